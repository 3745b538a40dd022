//! `ferrite user …`: operator accounts from the command line, working directly on the database
//! (the server may be running). The password is read from `FERRITE_USER_PASSWORD`, else asked
//! twice without echo on a terminal, else taken from the first line of standard input — never
//! from a flag, which would leave it in the shell history and the process list.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{Role, UserUpdate, first_admin, validate_password};
use crate::cli::ServeArgs;
use crate::fleet::secrets::ServerKey;
use crate::store::Store;

pub const USER_PASSWORD_VAR: &str = "FERRITE_USER_PASSWORD";
/// The audit actor of changes made with this command.
const CLI_ACTOR: &str = "system:cli";

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    /// Where the database is (the same settings as `serve`).
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password comes from FERRITE_USER_PASSWORD, or is asked for without
    /// echo, or is read from the first line of standard input.
    Add {
        #[arg(long)]
        name: String,
        /// field-service, fleet-manager or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Set a user's password (ends its sessions); read like `add`.
    SetPassword {
        #[arg(long)]
        name: String,
    },
    /// List users and their roles.
    List,
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse().map_err(|e: super::UnknownRole| e.to_string())
}

/// Runs a `ferrite user` command.
pub fn run(args: UserArgs) -> anyhow::Result<()> {
    let config = args.serve.resolve()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let key = config
            .secret_key
            .as_deref()
            .context("no server key: set FERRITE_SECRET_KEY (the same as for `ferrite serve`)")?;
        let key =
            ServerKey::from_hex(key).context("FERRITE_SECRET_KEY is not 64 hex characters")?;
        let store = Store::connect(&config.database_url, key)
            .await
            .context("cannot open the database")?;
        let result = execute(&store, args.command, read_password).await;
        store.close().await;
        result
    })
}

/// Runs `command`; `password` is asked only by the commands that need one. Returns the lines
/// to print.
async fn execute(
    store: &Store,
    command: UserCommand,
    password: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    for line in outcome(store, command, password).await? {
        println!("{line}");
    }
    Ok(())
}

async fn outcome(
    store: &Store,
    command: UserCommand,
    password: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    match command {
        UserCommand::Add { name, role } => {
            let password = password()?;
            let user = first_admin::create_user(store, &name, role, password, CLI_ACTOR).await?;
            out.push(format!("created {} ({})", user.name, user.role));
        }
        UserCommand::SetPassword { name } => {
            let password = password()?;
            validate_password(&password)?;
            let hash = first_admin::hash_password(password).await?;
            let update = UserUpdate {
                password_hash: Some(hash),
                ..UserUpdate::default()
            };
            store.update_user(&name, update, CLI_ACTOR).await?;
            out.push(format!(
                "password of {name} changed; its sessions were ended"
            ));
        }
        UserCommand::List => {
            for user in store.list_users().await? {
                let state = if user.disabled { " (disabled)" } else { "" };
                out.push(format!("{}\t{}{state}", user.name, user.role));
            }
        }
    }
    Ok(out)
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var(USER_PASSWORD_VAR) {
        return Ok(password);
    }
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Password again: ")?;
        anyhow::ensure!(first == second, "the passwords differ");
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::accounts::password;
    use crate::cli::{Cli, Command};

    async fn store() -> Store {
        Store::connect("sqlite::memory:", ServerKey::from_bytes([1; 32]))
            .await
            .unwrap()
    }

    fn parse(args: &[&str]) -> UserCommand {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Some(Command::User(args)) => args.command,
            other => panic!("not a user command: {other:?}"),
        }
    }

    #[tokio::test]
    async fn add_list_and_set_password() {
        let store = store().await;
        let add = parse(&[
            "ferrite", "user", "add", "--name", "alice", "--role", "admin",
        ]);
        let out = outcome(&store, add, || Ok("a long enough password".to_owned()))
            .await
            .unwrap();
        assert_eq!(out, ["created alice (admin)"]);
        let (_, hash) = store.user_for_login("alice").await.unwrap().unwrap();
        assert!(password::verify_password("a long enough password", &hash));

        let weak = parse(&[
            "ferrite",
            "user",
            "add",
            "--name",
            "bob",
            "--role",
            "field-service",
        ]);
        assert!(
            outcome(&store, weak, || Ok("short".to_owned()))
                .await
                .is_err()
        );
        assert!(
            Cli::try_parse_from(["ferrite", "user", "add", "--name", "x", "--role", "root"])
                .is_err()
        );

        let set = parse(&["ferrite", "user", "set-password", "--name", "alice"]);
        outcome(&store, set, || Ok("another long password".to_owned()))
            .await
            .unwrap();
        let (_, hash) = store.user_for_login("alice").await.unwrap().unwrap();
        assert!(password::verify_password("another long password", &hash));

        let list = parse(&["ferrite", "user", "list"]);
        let out = outcome(&store, list, || panic!("list asks for no password"))
            .await
            .unwrap();
        assert_eq!(out, ["alice\tadmin"]);
        let events = store.account_audit(None, 10).await.unwrap().events;
        assert!(events.iter().all(|e| e.actor == CLI_ACTOR));
    }
}
