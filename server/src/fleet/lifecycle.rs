//! The device lifecycle of PRODUCT.md ("Device lifecycle") as pure rules: the states, exactly the
//! legal transitions, the policy questions the server asks of a state, and who performed a change
//! (the audit actor). No I/O: the store applies a validated transition and its audit entry in one
//! transaction.

use std::fmt;
use std::str::FromStr;

/// Where a device is in its life. Connectivity (online/sleeping/offline) is tracked separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LifecycleState {
    /// Known to the fleet, not yet provisioned.
    Registered,
    /// The bootstrap server delivered its credentials (Bootstrap-Finish).
    Provisioned,
    /// Registered with the LwM2M server.
    Active,
    /// Operator hold: writes, executes, firmware and billing are paused; reads still allowed.
    Suspended,
    /// In a firmware update action.
    Updating,
    /// Terminal: credentials revoked, registration refused.
    Decommissioned,
}

impl LifecycleState {
    pub const ALL: [LifecycleState; 6] = [
        LifecycleState::Registered,
        LifecycleState::Provisioned,
        LifecycleState::Active,
        LifecycleState::Suspended,
        LifecycleState::Updating,
        LifecycleState::Decommissioned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleState::Registered => "registered",
            LifecycleState::Provisioned => "provisioned",
            LifecycleState::Active => "active",
            LifecycleState::Suspended => "suspended",
            LifecycleState::Updating => "updating",
            LifecycleState::Decommissioned => "decommissioned",
        }
    }

    pub fn is_terminal(self) -> bool {
        self == LifecycleState::Decommissioned
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lifecycle state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for LifecycleState {
    type Err = UnknownState;
    fn from_str(text: &str) -> Result<LifecycleState, UnknownState> {
        LifecycleState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| UnknownState(text.to_owned()))
    }
}

/// What a legal transition means; recorded as the audit entry's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransitionAction {
    /// registered → provisioned.
    BootstrapFinished,
    /// registered or provisioned → active: the first Register with the LwM2M server
    /// (direct-registration devices skip bootstrap).
    FirstRegistration,
    /// active → suspended (operator).
    Suspend,
    /// suspended → active (operator).
    Resume,
    /// active → updating.
    FirmwareUpdateStarted,
    /// updating → active, whatever the update's result.
    FirmwareUpdateFinished,
    /// any non-terminal → decommissioned (operator); also revokes the credentials.
    Decommission,
}

impl TransitionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionAction::BootstrapFinished => "bootstrap_finished",
            TransitionAction::FirstRegistration => "first_registration",
            TransitionAction::Suspend => "suspend",
            TransitionAction::Resume => "resume",
            TransitionAction::FirmwareUpdateStarted => "firmware_update_started",
            TransitionAction::FirmwareUpdateFinished => "firmware_update_finished",
            TransitionAction::Decommission => "decommission",
        }
    }

    /// Operator actions must say why: the audit trail is useless without it.
    pub fn requires_reason(self) -> bool {
        matches!(
            self,
            TransitionAction::Suspend | TransitionAction::Resume | TransitionAction::Decommission
        )
    }
}

impl fmt::Display for TransitionAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the lifecycle does not allow; `why` is a sentence for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal lifecycle transition {from} → {to}: {why}")]
pub struct IllegalTransition {
    pub from: LifecycleState,
    pub to: LifecycleState,
    pub why: &'static str,
}

/// Checks `from → to` against the lifecycle and names the action, or explains the refusal.
pub fn validate_transition(
    from: LifecycleState,
    to: LifecycleState,
) -> Result<TransitionAction, IllegalTransition> {
    use LifecycleState::*;
    let illegal = |why| Err(IllegalTransition { from, to, why });
    if from == Decommissioned {
        return illegal(
            "a decommissioned device is terminal: its credentials are revoked and it cannot return",
        );
    }
    if from == to {
        return illegal("the device is already in that state");
    }
    match (from, to) {
        (Registered, Provisioned) => Ok(TransitionAction::BootstrapFinished),
        (Registered | Provisioned, Active) => Ok(TransitionAction::FirstRegistration),
        (Active, Suspended) => Ok(TransitionAction::Suspend),
        (Suspended, Active) => Ok(TransitionAction::Resume),
        (Active, Updating) => Ok(TransitionAction::FirmwareUpdateStarted),
        (Updating, Active) => Ok(TransitionAction::FirmwareUpdateFinished),
        (_, Decommissioned) => Ok(TransitionAction::Decommission),
        (_, Registered) => {
            illegal("no transition leads back to registered: it is only the state of a new device")
        }
        (_, Provisioned) => illegal("only a registered device can be provisioned by bootstrap"),
        (Suspended, Updating) => {
            illegal("firmware updates of a suspended device are paused; resume it first")
        }
        (_, Updating) => illegal("a firmware update can start only on an active device"),
        (Updating, Suspended) => {
            illegal("a device cannot be suspended during a firmware update; wait until it ends")
        }
        (_, Suspended) => illegal("only an active device can be suspended"),
        // Every (x, Active) with x ≠ Active, Decommissioned was matched above.
        (_, Active) => illegal("this state does not lead to active"),
    }
}

/// May the LwM2M server accept a Register from a device in this state? Only a decommissioned
/// device is refused: a suspended device still registers (reads stay allowed) and an updating one
/// re-registers after flashing its new firmware.
pub fn allows_registration(state: LifecycleState) -> bool {
    state != LifecycleState::Decommissioned
}

/// May an operator or job Write, Execute, Create or Delete on the device? Refused while suspended
/// (and before the device is active). During `updating` the firmware action itself writes the
/// Package URI (5/0/1) and executes Update (5/0/2).
pub fn allows_dm_write(state: LifecycleState) -> bool {
    matches!(state, LifecycleState::Active | LifecycleState::Updating)
}

/// May the device be read (Read, Discover, Observe)? Yes while it is registered with the server,
/// suspended included.
pub fn allows_dm_read(state: LifecycleState) -> bool {
    matches!(
        state,
        LifecycleState::Active | LifecycleState::Suspended | LifecycleState::Updating
    )
}

/// May a firmware campaign pick this device? Only active ones (PRODUCT.md: campaign targets).
pub fn allows_firmware_update(state: LifecycleState) -> bool {
    state == LifecycleState::Active
}

/// Are the device's readings billed? Billing is paused while suspended.
pub fn allows_billing(state: LifecycleState) -> bool {
    matches!(state, LifecycleState::Active | LifecycleState::Updating)
}

/// Who made a change, as recorded in the audit trail: `user:alice`, `system:bootstrap`,
/// `token:ci`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor {
    kind: ActorKind,
    name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    /// An operator logged in to the console or API.
    User,
    /// The server itself (bootstrap, registration, firmware runner, import job).
    System,
    /// An API token (automation).
    Token,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::System => "system",
            ActorKind::Token => "token",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorError {
    #[error("an actor is written kind:name with kind user, system or token, got {0:?}")]
    Format(String),
    #[error("an actor name must be 1 to 128 visible characters without ':'")]
    Name,
}

impl Actor {
    pub fn new(kind: ActorKind, name: &str) -> Result<Actor, ActorError> {
        let valid = !name.is_empty()
            && name.chars().count() <= 128
            && name
                .chars()
                .all(|c| !c.is_control() && !c.is_whitespace() && c != ':');
        if !valid {
            return Err(ActorError::Name);
        }
        Ok(Actor {
            kind,
            name: name.to_owned(),
        })
    }

    pub fn user(name: &str) -> Result<Actor, ActorError> {
        Actor::new(ActorKind::User, name)
    }

    pub fn token(name: &str) -> Result<Actor, ActorError> {
        Actor::new(ActorKind::Token, name)
    }

    /// The server's own components; the names are fixed strings in our code, hence infallible.
    pub fn system(component: SystemComponent) -> Actor {
        Actor {
            kind: ActorKind::System,
            name: component.as_str().to_owned(),
        }
    }

    pub fn kind(&self) -> ActorKind {
        self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The parts of the server that change lifecycle states on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemComponent {
    Bootstrap,
    Registration,
    Firmware,
    Import,
}

impl SystemComponent {
    pub fn as_str(self) -> &'static str {
        match self {
            SystemComponent::Bootstrap => "bootstrap",
            SystemComponent::Registration => "registration",
            SystemComponent::Firmware => "firmware",
            SystemComponent::Import => "import",
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.name)
    }
}

impl FromStr for Actor {
    type Err = ActorError;
    fn from_str(text: &str) -> Result<Actor, ActorError> {
        let (kind, name) = text
            .split_once(':')
            .ok_or_else(|| ActorError::Format(text.to_owned()))?;
        let kind = match kind {
            "user" => ActorKind::User,
            "system" => ActorKind::System,
            "token" => ActorKind::Token,
            _ => return Err(ActorError::Format(text.to_owned())),
        };
        Actor::new(kind, name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::LifecycleState::*;
    use super::*;

    /// The legal transitions of PRODUCT.md, written out independently of `validate_transition`.
    const LEGAL: [(LifecycleState, LifecycleState, TransitionAction); 12] = [
        (Registered, Provisioned, TransitionAction::BootstrapFinished),
        (Registered, Active, TransitionAction::FirstRegistration),
        (Provisioned, Active, TransitionAction::FirstRegistration),
        (Active, Suspended, TransitionAction::Suspend),
        (Suspended, Active, TransitionAction::Resume),
        (Active, Updating, TransitionAction::FirmwareUpdateStarted),
        (Updating, Active, TransitionAction::FirmwareUpdateFinished),
        (Registered, Decommissioned, TransitionAction::Decommission),
        (Provisioned, Decommissioned, TransitionAction::Decommission),
        (Active, Decommissioned, TransitionAction::Decommission),
        (Suspended, Decommissioned, TransitionAction::Decommission),
        (Updating, Decommissioned, TransitionAction::Decommission),
    ];

    #[test]
    fn every_legal_transition_is_accepted_with_its_action() {
        for (from, to, action) in LEGAL {
            assert_eq!(validate_transition(from, to), Ok(action), "{from} → {to}");
        }
    }

    #[test]
    fn every_other_pair_is_illegal_with_from_to_and_a_reason() {
        let mut illegal = 0;
        for from in LifecycleState::ALL {
            for to in LifecycleState::ALL {
                if LEGAL.iter().any(|&(f, t, _)| (f, t) == (from, to)) {
                    continue;
                }
                let error = validate_transition(from, to).unwrap_err();
                assert_eq!((error.from, error.to), (from, to));
                assert!(error.why.len() > 10, "{from} → {to} needs a real reason");
                assert!(error.to_string().contains(from.as_str()));
                illegal += 1;
            }
        }
        assert_eq!(illegal, 36 - LEGAL.len());
    }

    #[test]
    fn specific_refusals_explain_themselves() {
        let e = validate_transition(Decommissioned, Active).unwrap_err();
        assert!(e.why.contains("terminal"));
        let e = validate_transition(Suspended, Updating).unwrap_err();
        assert!(e.why.contains("resume"));
        let e = validate_transition(Active, Active).unwrap_err();
        assert!(e.why.contains("already"));
        let e = validate_transition(Active, Registered).unwrap_err();
        assert!(e.why.contains("back to registered"));
    }

    #[test]
    fn policy_helpers() {
        assert!(!allows_dm_write(Suspended));
        assert!(allows_dm_read(Suspended));
        assert!(allows_dm_write(Active) && allows_dm_write(Updating));
        assert!(!allows_dm_write(Registered) && !allows_dm_write(Decommissioned));
        assert!(!allows_firmware_update(Suspended) && allows_firmware_update(Active));
        assert!(!allows_billing(Suspended) && allows_billing(Active));
        for state in LifecycleState::ALL {
            assert_eq!(allows_registration(state), state != Decommissioned);
        }
    }

    #[test]
    fn operator_actions_need_reasons() {
        let needing: Vec<_> = LEGAL
            .iter()
            .map(|l| l.2)
            .filter(|a| a.requires_reason())
            .collect();
        assert!(needing.contains(&TransitionAction::Suspend));
        assert!(needing.contains(&TransitionAction::Resume));
        assert!(needing.contains(&TransitionAction::Decommission));
        assert!(!TransitionAction::FirstRegistration.requires_reason());
    }

    #[test]
    fn states_and_actors_round_trip_through_text() {
        for state in LifecycleState::ALL {
            assert_eq!(state.as_str().parse::<LifecycleState>(), Ok(state));
        }
        assert!("Active".parse::<LifecycleState>().is_err());
        let actor: Actor = "user:alice".parse().unwrap();
        assert_eq!(actor, Actor::user("alice").unwrap());
        assert_eq!(actor.to_string(), "user:alice");
        assert_eq!(
            Actor::system(SystemComponent::Bootstrap).to_string(),
            "system:bootstrap"
        );
        assert_eq!(
            "token:ci".parse::<Actor>().unwrap().kind(),
            ActorKind::Token
        );
        assert!("root:x".parse::<Actor>().is_err());
        assert!("alice".parse::<Actor>().is_err());
        assert_eq!("user:".parse::<Actor>(), Err(ActorError::Name));
        assert_eq!("user:a b".parse::<Actor>(), Err(ActorError::Name));
    }
}
