//! CoRE Link Format (RFC 6690) as LwM2M uses it: the "Objects and Object Instances" payload of
//! Register and Update (OMA LwM2M TS Core 1.1 §6.2.1), Discover and Bootstrap-Discover output
//! (TS Core 1.1 §6.3, §6.1; TS 1.0 §5.4.2) and the attributes attached to links (TS Core 1.1
//! §5.1.2).
//!
//! Three layers, each the inverse of an encoder:
//! - [`parse`] / [`encode_links`]: the generic syntax, `<target>;name=value;name,<target>…`;
//! - [`parse_registration`] / [`RegistrationLinks::to_link_format`]: which objects and instances a
//!   client has, under which root path, in which content formats;
//! - [`parse_discover`] / [`encode_discover`]: paths with typed [`Attributes`].
//!
//! Parsing never panics and reports the byte offset of what is wrong ([`LinkError`]).
//!
//! Leniency, chosen deliberately: whitespace is accepted around `,` and `;` and at both ends (RFC
//! 6690 allows none, but clients and hand-written test payloads put it there); an empty payload is
//! an empty list. Everything else that RFC 6690 §2 does not allow is an error: a missing `>`, an
//! unterminated quote, a character a target or an unquoted value cannot hold, an empty link between
//! two commas, a trailing comma.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::path::{Path, PathError};

/// One link: a target URI and its parameters, in the order they were written.
///
/// A parameter is `name=value` (`Some`, quoted or not: the quotes are syntax, not part of the
/// value) or a bare `name` (`None`). Parameter names compare case-insensitively (RFC 8288 §3) in
/// [`Link::param`]; they are kept as written.
///
/// [`encode_links`] writes `target` as is: a target built by hand must hold only printable ASCII
/// without `<`, `>` and `"`, and names only RFC 5987 `parmname` characters, or the text will not
/// parse back. Values may hold anything; they are quoted and escaped as needed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    pub target: String,
    pub params: Vec<(String, Option<String>)>,
}

impl Link {
    /// A link to `target` without parameters.
    pub fn new(target: impl Into<String>) -> Link {
        Link {
            target: target.into(),
            params: Vec::new(),
        }
    }

    /// Adds `name=value` (or a bare `name` when `value` is `None`).
    pub fn with_param(mut self, name: impl Into<String>, value: Option<&str>) -> Link {
        self.params.push((name.into(), value.map(str::to_owned)));
        self
    }

    /// The first parameter called `name` (ASCII case-insensitive): `Some(None)` for a bare name.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

impl fmt::Display for Link {
    /// The link in link format, e.g. `</3/0>;pmin=10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.target)?;
        for (name, value) in &self.params {
            write!(f, ";{name}")?;
            if let Some(value) = value {
                f.write_str("=")?;
                write_value(f, name, value)?;
            }
        }
        Ok(())
    }
}

/// Parameters whose values are written quoted even when a bare token would do: RFC 6690 §2 and
/// the LwM2M examples quote `rt`, `if`, `title`, `anchor` and the Bootstrap-Discover `uri`, and
/// some parsers only accept them quoted.
const ALWAYS_QUOTED: &[&str] = &["rt", "if", "title", "anchor", "rel", "uri"];

fn write_value(f: &mut fmt::Formatter<'_>, name: &str, value: &str) -> fmt::Result {
    let bare = !value.is_empty()
        && value.chars().all(is_ptoken_char)
        && !ALWAYS_QUOTED.iter().any(|q| q.eq_ignore_ascii_case(name));
    if bare {
        return f.write_str(value);
    }
    f.write_str("\"")?;
    for c in value.chars() {
        // RFC 2616 §2.2 quoted-pair: a backslash makes the next character literal. Quotes and
        // backslashes must be escaped; control characters are escaped so the text stays on one
        // line and the parser (which refuses raw control characters in quotes) reads them back.
        if c == '"' || c == '\\' || (c.is_control() && c != '\t') {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}

/// Writes links in link format, separated by commas (no spaces).
pub fn encode_links(links: &[Link]) -> String {
    let mut out = String::new();
    for (i, link) in links.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&link.to_string());
    }
    out
}

/// A link-format payload that could not be read: where (byte offset into the text) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid link format at byte {offset}: {kind}")]
pub struct LinkError {
    pub offset: usize,
    pub kind: LinkErrorKind,
}

/// What is wrong with a link-format payload.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinkErrorKind {
    #[error("expected '<' to start a link, found {}", describe(*.found))]
    ExpectedLink { found: Option<char> },
    #[error("the link target has no closing '>'")]
    UnterminatedTarget,
    #[error("{ch:?} is not allowed in a link target")]
    InvalidTargetChar { ch: char },
    #[error("expected ';', ',' or the end of the payload, found {ch:?}")]
    ExpectedSeparator { ch: char },
    #[error("expected a parameter name, found {}", describe(*.found))]
    ExpectedParamName { found: Option<char> },
    #[error("parameter {name:?} has '=' but no value")]
    MissingValue { name: String },
    #[error("{ch:?} is not allowed in an unquoted parameter value (quote the value)")]
    InvalidValueChar { ch: char },
    #[error("a quoted value has no closing '\"'")]
    UnterminatedQuote,
    #[error("control character {ch:?} inside a quoted value")]
    ControlInQuote { ch: char },
    #[error("link target {target:?} is not an LwM2M path: {source}")]
    InvalidPath { target: String, source: PathError },
    #[error("link target {target:?} is outside the root path {root:?}")]
    OutsideRoot { target: String, root: String },
    #[error("attribute {name}={value:?}: {reason}")]
    InvalidAttribute {
        name: String,
        value: String,
        reason: &'static str,
    },
    #[error("attribute {name} needs a value")]
    MissingAttributeValue { name: String },
    #[error("attribute {name} appears twice in one link")]
    DuplicateAttribute { name: String },
    #[error("more than one link names the LwM2M root (rt=\"oma.lwm2m\")")]
    SeveralRoots,
    #[error("root path {target:?} is not an absolute path such as \"/\" or \"/lwm2m\"")]
    InvalidRootPath { target: String },
    #[error("object {object} is given two versions, {first} and {second}")]
    ConflictingVersions {
        object: u16,
        first: String,
        second: String,
    },
}

fn describe(found: Option<char>) -> String {
    match found {
        Some(c) => format!("{c:?}"),
        None => "the end of the payload".to_owned(),
    }
}

impl LinkErrorKind {
    fn at(self, offset: usize) -> LinkError {
        LinkError { offset, kind: self }
    }
}

// ---------------------------------------------------------------------------------------------
// Syntax (RFC 6690 §2)
// ---------------------------------------------------------------------------------------------

/// A link as parsed, with the offsets semantic checks report errors at.
struct SpannedLink {
    /// Offset of the `<`.
    offset: usize,
    target: String,
    params: Vec<SpannedParam>,
}

struct SpannedParam {
    /// Offset of the parameter name.
    offset: usize,
    name: String,
    value: Option<String>,
}

impl SpannedLink {
    fn into_link(self) -> Link {
        Link {
            target: self.target,
            params: self.params.into_iter().map(|p| (p.name, p.value)).collect(),
        }
    }

    fn has_root_rt(&self) -> bool {
        // rt is a space-separated list of relation types (RFC 6690 §3.1); TS Core 1.1 §6.2.1 marks
        // the LwM2M root (possibly an alternate path) with "oma.lwm2m".
        self.params.iter().any(|p| {
            p.name.eq_ignore_ascii_case("rt")
                && p.value
                    .as_deref()
                    .is_some_and(|v| v.split(' ').any(|t| t == "oma.lwm2m"))
        })
    }
}

/// `ptokenchar` of RFC 6690 §2: printable ASCII except space, `"`, `,`, `;` and `\`.
fn is_ptoken_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '"' | ',' | ';' | '\\')
}

/// `parmname` of RFC 5987 §3.2.1.
fn is_parmname_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '!' | '#' | '$' | '&' | '+' | '-' | '.' | '^' | '_' | '`' | '|' | '~'
        )
}

/// What a URI-reference between `<` and `>` may hold: printable ASCII except `<`, `>` and `"`.
/// (RFC 3986 is stricter; LwM2M targets are paths, and this is enough to keep the syntax
/// unambiguous.)
fn is_target_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        // `pos` only ever advances by whole characters, so it is always a char boundary; `get`
        // keeps this panic-free regardless.
        self.text
            .get(self.pos..)
            .and_then(|rest| rest.chars().next())
    }

    fn bump(&mut self, c: char) {
        self.pos += c.len_utf8();
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek().filter(|&c| is_space(c)) {
            self.bump(c);
        }
    }

    fn links(&mut self) -> Result<Vec<SpannedLink>, LinkError> {
        let mut links = Vec::new();
        self.skip_space();
        if self.peek().is_none() {
            return Ok(links);
        }
        loop {
            links.push(self.link()?);
            self.skip_space();
            match self.peek() {
                None => return Ok(links),
                Some(',') => {
                    self.bump(',');
                    self.skip_space();
                }
                Some(ch) => return Err(LinkErrorKind::ExpectedSeparator { ch }.at(self.pos)),
            }
        }
    }

    fn link(&mut self) -> Result<SpannedLink, LinkError> {
        let offset = self.pos;
        match self.peek() {
            Some('<') => self.bump('<'),
            found => return Err(LinkErrorKind::ExpectedLink { found }.at(offset)),
        }
        let target_start = self.pos;
        loop {
            match self.peek() {
                None => return Err(LinkErrorKind::UnterminatedTarget.at(offset)),
                Some('>') => break,
                Some(c) if is_target_char(c) => self.bump(c),
                Some(ch) => return Err(LinkErrorKind::InvalidTargetChar { ch }.at(self.pos)),
            }
        }
        let target = self
            .text
            .get(target_start..self.pos)
            .unwrap_or_default()
            .to_owned();
        self.bump('>');
        let mut params = Vec::new();
        loop {
            self.skip_space();
            if self.peek() != Some(';') {
                return Ok(SpannedLink {
                    offset,
                    target,
                    params,
                });
            }
            self.bump(';');
            self.skip_space();
            params.push(self.param()?);
        }
    }

    fn param(&mut self) -> Result<SpannedParam, LinkError> {
        let offset = self.pos;
        while let Some(c) = self.peek().filter(|&c| is_parmname_char(c)) {
            self.bump(c);
        }
        if self.pos == offset {
            return Err(LinkErrorKind::ExpectedParamName { found: self.peek() }.at(offset));
        }
        let name = self
            .text
            .get(offset..self.pos)
            .unwrap_or_default()
            .to_owned();
        if self.peek() != Some('=') {
            return Ok(SpannedParam {
                offset,
                name,
                value: None,
            });
        }
        self.bump('=');
        let value = match self.peek() {
            Some('"') => self.quoted()?,
            Some(c) if is_ptoken_char(c) => {
                let start = self.pos;
                while let Some(c) = self.peek().filter(|&c| is_ptoken_char(c)) {
                    self.bump(c);
                }
                self.text
                    .get(start..self.pos)
                    .unwrap_or_default()
                    .to_owned()
            }
            Some(ch) if !matches!(ch, ',' | ';') && !is_space(ch) => {
                return Err(LinkErrorKind::InvalidValueChar { ch }.at(self.pos));
            }
            _ => return Err(LinkErrorKind::MissingValue { name }.at(self.pos)),
        };
        Ok(SpannedParam {
            offset,
            name,
            value: Some(value),
        })
    }

    /// A quoted-string (RFC 2616 §2.2), the cursor on the opening quote.
    fn quoted(&mut self) -> Result<String, LinkError> {
        let open = self.pos;
        self.bump('"');
        let mut value = String::new();
        loop {
            match self.peek() {
                None => return Err(LinkErrorKind::UnterminatedQuote.at(open)),
                Some('"') => {
                    self.bump('"');
                    return Ok(value);
                }
                Some('\\') => {
                    self.bump('\\');
                    match self.peek() {
                        None => return Err(LinkErrorKind::UnterminatedQuote.at(open)),
                        Some(c) => {
                            self.bump(c);
                            value.push(c);
                        }
                    }
                }
                Some(ch) if ch.is_control() && ch != '\t' => {
                    return Err(LinkErrorKind::ControlInQuote { ch }.at(self.pos));
                }
                Some(c) => {
                    self.bump(c);
                    value.push(c);
                }
            }
        }
    }
}

fn parse_spanned(text: &str) -> Result<Vec<SpannedLink>, LinkError> {
    Cursor { text, pos: 0 }.links()
}

/// Parses a link-format payload (RFC 6690 §2) into its links. An empty (or all-whitespace)
/// payload is an empty list.
pub fn parse(text: &str) -> Result<Vec<Link>, LinkError> {
    Ok(parse_spanned(text)?
        .into_iter()
        .map(SpannedLink::into_link)
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Typed attribute values (TS Core 1.1 §5.1.2)
// ---------------------------------------------------------------------------------------------

fn invalid(name: &str, value: &str, reason: &'static str) -> LinkErrorKind {
    LinkErrorKind::InvalidAttribute {
        name: name.to_owned(),
        value: value.to_owned(),
        reason,
    }
}

fn required<'v>(name: &str, value: Option<&'v str>) -> Result<&'v str, LinkErrorKind> {
    value.ok_or_else(|| LinkErrorKind::MissingAttributeValue {
        name: name.to_owned(),
    })
}

/// A non-negative decimal integer (no sign, no spaces).
fn parse_unsigned<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, LinkErrorKind> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(name, value, "not a non-negative decimal integer"));
    }
    value
        .parse()
        .map_err(|_| invalid(name, value, "out of range"))
}

/// A finite decimal number (`42`, `-0.5`, `4.2e1`); Rust's parser alone would also take `inf`
/// and `NaN`, which a threshold cannot be.
fn parse_decimal(name: &str, value: &str) -> Result<f64, LinkErrorKind> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return Err(invalid(name, value, "not a decimal number"));
    }
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(invalid(name, value, "out of range")),
        Err(_) => Err(invalid(name, value, "not a decimal number")),
    }
}

/// An LwM2M version, `major.minor` (TS Core 1.1 §5.1.2 `ver`, `lwm2m`).
fn parse_version(name: &str, value: &str) -> Result<String, LinkErrorKind> {
    let ok = value.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    });
    if ok {
        Ok(value.to_owned())
    } else {
        Err(invalid(name, value, "not a major.minor version"))
    }
}

/// A `ct` value: one content-format number, or several separated by spaces in quotes
/// (TS Core 1.1 §6.2.1: `ct="60 110 112 11542"`).
fn parse_content_formats(value: &str) -> Result<Vec<u16>, LinkErrorKind> {
    let mut formats = Vec::new();
    for token in value.split(' ').filter(|t| !t.is_empty()) {
        let n: u16 = parse_unsigned("ct", token).map_err(|_| {
            invalid(
                "ct",
                value,
                "not a list of content-format numbers (0..=65535)",
            )
        })?;
        if !formats.contains(&n) {
            formats.push(n);
        }
    }
    if formats.is_empty() {
        return Err(invalid("ct", value, "empty content-format list"));
    }
    Ok(formats)
}

fn content_formats_value(formats: &[u16]) -> String {
    formats
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes a float so that it reads back to the same value: plain decimals in the usual range
/// (`50`, `42.2`), exponent form outside it so that extreme values stay short.
fn format_decimal(v: f64) -> String {
    if v == 0.0 || (1e-5..1e16).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

// ---------------------------------------------------------------------------------------------
// Registration payload (TS Core 1.1 §6.2.1)
// ---------------------------------------------------------------------------------------------

/// What a Register or Update payload says about the client (TS Core 1.1 §6.2.1): its LwM2M root
/// path, the content formats it supports, and its objects and object instances.
///
/// How links are read:
/// - the link with `rt="oma.lwm2m"` names the root path (an alternate path such as `/lwm2m`); at
///   most one may; without one the root is `/`. The link whose target is the root path (with or
///   without `rt`) is the root link; its `ct` gives [`content_formats`](Self::content_formats);
/// - `<root/o>` adds object `o` (an object with no instance yet when it has no instance link);
///   `<root/o/i>` adds instance `i` to object `o`. `ver` and `ct` on either give the object's
///   version and formats; other parameters are not kept;
/// - a link that starts with `/` but lies outside the root path, or that names a resource or a
///   resource instance, is not an error: it is skipped and listed in
///   [`ignored`](Self::ignored) so that the server can log it. A path under the root whose
///   segments are not valid IDs, a bad `ver` or `ct`, two roots, or two versions for one object
///   are errors: the payload is not trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationLinks {
    /// `/` unless a link with `rt="oma.lwm2m"` names another path (no trailing slash).
    pub root_path: String,
    /// The `ct` of the root link: the content formats the client supports for every object.
    pub content_formats: Vec<u16>,
    pub objects: BTreeMap<u16, ObjectLinks>,
    /// Links that were skipped, with why. Never encoded by [`to_link_format`](Self::to_link_format).
    pub ignored: Vec<IgnoredLink>,
}

/// One object of a registration payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectLinks {
    /// The object version (`ver`, TS Core 1.1 §5.1.2), when the client gives one; absent means
    /// the version of the object definition for the client's LwM2M version.
    pub version: Option<String>,
    /// The existing instances; empty for an object the client supports but has no instance of.
    pub instances: BTreeSet<u16>,
    /// Content formats given with `ct` on this object's links.
    pub content_formats: Vec<u16>,
}

/// A link of a registration payload that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredLink {
    /// Byte offset of the link's `<`.
    pub offset: usize,
    pub target: String,
    pub reason: IgnoredReason,
}

/// Why a registration link was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoredReason {
    /// The target is an absolute path outside the client's root path.
    OutsideRoot,
    /// The target is a resource or resource instance; registration lists objects and instances.
    NotObjectOrInstance,
}

impl Default for RegistrationLinks {
    fn default() -> Self {
        RegistrationLinks {
            root_path: "/".to_owned(),
            content_formats: Vec::new(),
            objects: BTreeMap::new(),
            ignored: Vec::new(),
        }
    }
}

/// The part of `target` below `root`, as an absolute path (`/` for the root itself); `None` when
/// `target` is not under `root`.
fn below_root<'t>(target: &'t str, root: &str) -> Option<&'t str> {
    if root == "/" {
        return target.starts_with('/').then_some(target);
    }
    let rest = target.strip_prefix(root)?;
    if rest.is_empty() {
        Some("/")
    } else {
        rest.starts_with('/').then_some(rest)
    }
}

/// Normalises a root-link target: absolute, no trailing slash except for `/` itself.
fn normalise_root(target: &str) -> Option<String> {
    if !target.starts_with('/') {
        return None;
    }
    let trimmed = target.trim_end_matches('/');
    Some(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// Reads the path of `link` below `root`: `Ok(None)` when it lies outside the root.
fn link_path(link: &SpannedLink, root: &str) -> Result<Option<Path>, LinkError> {
    let path_error = |source| {
        LinkErrorKind::InvalidPath {
            target: link.target.clone(),
            source,
        }
        .at(link.offset + 1)
    };
    match below_root(&link.target, root) {
        Some(rest) => rest.parse().map(Some).map_err(path_error),
        None if link.target.starts_with('/') => Ok(None),
        // A relative reference or a URI with a scheme: not an LwM2M path at all.
        None => link.target.parse::<Path>().map(Some).map_err(path_error),
    }
}

fn merge_formats(into: &mut Vec<u16>, formats: Vec<u16>) {
    for f in formats {
        if !into.contains(&f) {
            into.push(f);
        }
    }
}

/// Parses the payload of a Register or Update request; see [`RegistrationLinks`] for the rules.
pub fn parse_registration(text: &str) -> Result<RegistrationLinks, LinkError> {
    let links = parse_spanned(text)?;
    let mut reg = RegistrationLinks::default();

    let mut roots = links.iter().filter(|l| l.has_root_rt());
    if let Some(root) = roots.next() {
        if let Some(second) = roots.next() {
            return Err(LinkErrorKind::SeveralRoots.at(second.offset));
        }
        reg.root_path = normalise_root(&root.target).ok_or_else(|| {
            LinkErrorKind::InvalidRootPath {
                target: root.target.clone(),
            }
            .at(root.offset + 1)
        })?;
    }

    for link in &links {
        let Some(path) = link_path(link, &reg.root_path)? else {
            reg.ignored.push(IgnoredLink {
                offset: link.offset,
                target: link.target.clone(),
                reason: IgnoredReason::OutsideRoot,
            });
            continue;
        };
        let (object, instance) = match path {
            Path::Root => {
                for p in &link.params {
                    if p.name.eq_ignore_ascii_case("ct") {
                        let formats = parse_content_formats(
                            required("ct", p.value.as_deref()).map_err(|k| k.at(p.offset))?,
                        )
                        .map_err(|k| k.at(p.offset))?;
                        merge_formats(&mut reg.content_formats, formats);
                    }
                }
                continue;
            }
            Path::Object(o) => (o, None),
            Path::Instance(o, i) => (o, Some(i)),
            Path::Resource(..) | Path::ResourceInstance(..) => {
                reg.ignored.push(IgnoredLink {
                    offset: link.offset,
                    target: link.target.clone(),
                    reason: IgnoredReason::NotObjectOrInstance,
                });
                continue;
            }
        };
        let entry = reg.objects.entry(object).or_default();
        if let Some(i) = instance {
            entry.instances.insert(i);
        }
        for p in &link.params {
            let value = p.value.as_deref();
            if p.name.eq_ignore_ascii_case("ver") {
                let version = required("ver", value)
                    .and_then(|v| parse_version("ver", v))
                    .map_err(|k| k.at(p.offset))?;
                match &entry.version {
                    Some(first) if *first != version => {
                        return Err(LinkErrorKind::ConflictingVersions {
                            object,
                            first: first.clone(),
                            second: version,
                        }
                        .at(p.offset));
                    }
                    _ => entry.version = Some(version),
                }
            } else if p.name.eq_ignore_ascii_case("ct") {
                let formats = required("ct", value)
                    .and_then(parse_content_formats)
                    .map_err(|k| k.at(p.offset))?;
                merge_formats(&mut entry.content_formats, formats);
            }
        }
    }
    Ok(reg)
}

impl RegistrationLinks {
    /// The links a client sends in Register (TS Core 1.1 §6.2.1): a root link
    /// `<root>;rt="oma.lwm2m";ct=…` when the root is not `/` or content formats are given, then
    /// per object `<root/o>;ver=…;ct=…` (when it has a version, formats, or no instance) and
    /// `<root/o/i>` per instance. [`ignored`](Self::ignored) links are not written.
    pub fn to_links(&self) -> Vec<Link> {
        let mut links = Vec::new();
        if self.root_path != "/" || !self.content_formats.is_empty() {
            let mut root = Link::new(self.root_path.clone()).with_param("rt", Some("oma.lwm2m"));
            if !self.content_formats.is_empty() {
                root = root.with_param("ct", Some(&content_formats_value(&self.content_formats)));
            }
            links.push(root);
        }
        let prefix = if self.root_path == "/" {
            ""
        } else {
            self.root_path.as_str()
        };
        for (id, object) in &self.objects {
            if object.instances.is_empty()
                || object.version.is_some()
                || !object.content_formats.is_empty()
            {
                let mut link = Link::new(format!("{prefix}/{id}"));
                if let Some(version) = &object.version {
                    link = link.with_param("ver", Some(version));
                }
                if !object.content_formats.is_empty() {
                    link = link
                        .with_param("ct", Some(&content_formats_value(&object.content_formats)));
                }
                links.push(link);
            }
            for instance in &object.instances {
                links.push(Link::new(format!("{prefix}/{id}/{instance}")));
            }
        }
        links
    }

    /// [`to_links`](Self::to_links) as link-format text.
    pub fn to_link_format(&self) -> String {
        encode_links(&self.to_links())
    }
}

// ---------------------------------------------------------------------------------------------
// Discover (TS Core 1.1 §6.3; Bootstrap-Discover §6.1) and attributes (§5.1.2)
// ---------------------------------------------------------------------------------------------

/// The attributes attached to a path (TS Core 1.1 §5.1.2), typed. Names are matched ASCII
/// case-insensitively; any other parameter is kept in [`other`](Self::other) as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes {
    /// Number of instances of a multiple-instance resource.
    pub dim: Option<u32>,
    /// Short Server ID (Bootstrap-Discover).
    pub ssid: Option<u16>,
    /// Server URI (Bootstrap-Discover).
    pub uri: Option<String>,
    /// Object version, `major.minor`.
    pub ver: Option<String>,
    /// LwM2M enabler version, `major.minor` (Bootstrap-Discover root link).
    pub lwm2m: Option<String>,
    /// Minimum period between notifications, seconds.
    pub pmin: Option<u32>,
    /// Maximum period between notifications, seconds.
    pub pmax: Option<u32>,
    /// Greater-than threshold.
    pub gt: Option<f64>,
    /// Less-than threshold.
    pub lt: Option<f64>,
    /// Step.
    pub st: Option<f64>,
    /// Minimum evaluation period, seconds.
    pub epmin: Option<u32>,
    /// Maximum evaluation period, seconds.
    pub epmax: Option<u32>,
    /// Parameters this type does not know (e.g. LwM2M 1.2 `edge`, `con`, `hqmax`), in order.
    pub other: Vec<(String, Option<String>)>,
}

/// The attribute names [`Attributes`] has fields for, in the order they are written.
const KNOWN_ATTRIBUTES: &[&str] = &[
    "dim", "ssid", "uri", "ver", "lwm2m", "pmin", "pmax", "gt", "lt", "st", "epmin", "epmax",
];

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), LinkErrorKind> {
    if slot.is_some() {
        return Err(LinkErrorKind::DuplicateAttribute {
            name: name.to_owned(),
        });
    }
    *slot = Some(value);
    Ok(())
}

impl Attributes {
    /// Whether no attribute is set.
    pub fn is_empty(&self) -> bool {
        *self == Attributes::default()
    }

    /// Reads one parameter into the matching field (or [`other`](Self::other)).
    fn apply(&mut self, name: &str, value: Option<&str>) -> Result<(), LinkErrorKind> {
        let key = name.to_ascii_lowercase();
        match key.as_str() {
            "dim" | "pmin" | "pmax" | "epmin" | "epmax" => {
                let v = parse_unsigned::<u32>(&key, required(&key, value)?)?;
                let slot = match key.as_str() {
                    "dim" => &mut self.dim,
                    "pmin" => &mut self.pmin,
                    "pmax" => &mut self.pmax,
                    "epmin" => &mut self.epmin,
                    _ => &mut self.epmax,
                };
                set_once(slot, &key, v)
            }
            "gt" | "lt" | "st" => {
                let v = parse_decimal(&key, required(&key, value)?)?;
                let slot = match key.as_str() {
                    "gt" => &mut self.gt,
                    "lt" => &mut self.lt,
                    _ => &mut self.st,
                };
                set_once(slot, &key, v)
            }
            "ssid" => {
                let v = parse_unsigned::<u16>(&key, required(&key, value)?)?;
                set_once(&mut self.ssid, &key, v)
            }
            "uri" => set_once(&mut self.uri, &key, required(&key, value)?.to_owned()),
            "ver" => {
                let v = parse_version(&key, required(&key, value)?)?;
                set_once(&mut self.ver, &key, v)
            }
            "lwm2m" => {
                let v = parse_version(&key, required(&key, value)?)?;
                set_once(&mut self.lwm2m, &key, v)
            }
            _ => {
                self.other.push((name.to_owned(), value.map(str::to_owned)));
                Ok(())
            }
        }
    }

    /// Reads attributes from link parameters (e.g. [`Link::params`]).
    pub fn from_params(params: &[(String, Option<String>)]) -> Result<Attributes, LinkErrorKind> {
        let mut attributes = Attributes::default();
        for (name, value) in params {
            attributes.apply(name, value.as_deref())?;
        }
        Ok(attributes)
    }

    /// The attributes as link parameters: known ones in the order of TS Core 1.1 §5.1.2's
    /// tables, then [`other`](Self::other).
    pub fn to_params(&self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for &name in KNOWN_ATTRIBUTES {
            let value = match name {
                "dim" => self.dim.map(|v| v.to_string()),
                "ssid" => self.ssid.map(|v| v.to_string()),
                "uri" => self.uri.clone(),
                "ver" => self.ver.clone(),
                "lwm2m" => self.lwm2m.clone(),
                "pmin" => self.pmin.map(|v| v.to_string()),
                "pmax" => self.pmax.map(|v| v.to_string()),
                "gt" => self.gt.map(format_decimal),
                "lt" => self.lt.map(format_decimal),
                "st" => self.st.map(format_decimal),
                "epmin" => self.epmin.map(|v| v.to_string()),
                "epmax" => self.epmax.map(|v| v.to_string()),
                _ => None,
            };
            if let Some(value) = value {
                out.push((name.to_owned(), Some(value)));
            }
        }
        out.extend(self.other.iter().cloned());
        out
    }
}

/// One link of a Discover (or Bootstrap-Discover) response: a path and its attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverLink {
    pub path: Path,
    pub attributes: Attributes,
}

impl DiscoverLink {
    /// The link for this entry, its target under `/`.
    pub fn to_link(&self) -> Link {
        Link {
            target: self.path.to_string(),
            params: self.attributes.to_params(),
        }
    }
}

/// Parses a Discover or Bootstrap-Discover response whose targets are LwM2M paths from `/`
/// (`</3/0>;pmin=10,</3/0/1>,…`; `</>;lwm2m=1.1,…`). Every target must be a valid path and every
/// known attribute well typed.
pub fn parse_discover(text: &str) -> Result<Vec<DiscoverLink>, LinkError> {
    parse_discover_under(text, "/")
}

/// Like [`parse_discover`], for a client that registered an alternate root path (`/lwm2m`): every
/// target must lie under it, and the paths returned are relative to it.
pub fn parse_discover_under(text: &str, root_path: &str) -> Result<Vec<DiscoverLink>, LinkError> {
    // A root given without its leading slash ("lwm2m") means the same path.
    let root = if root_path.starts_with('/') {
        normalise_root(root_path)
    } else {
        normalise_root(&format!("/{root_path}"))
    }
    .unwrap_or_else(|| "/".to_owned());
    let mut out = Vec::new();
    for link in parse_spanned(text)? {
        let path = link_path(&link, &root)?.ok_or_else(|| {
            LinkErrorKind::OutsideRoot {
                target: link.target.clone(),
                root: root.clone(),
            }
            .at(link.offset + 1)
        })?;
        let mut attributes = Attributes::default();
        for p in &link.params {
            attributes
                .apply(&p.name, p.value.as_deref())
                .map_err(|k| k.at(p.offset))?;
        }
        out.push(DiscoverLink { path, attributes });
    }
    Ok(out)
}

/// Writes Discover output (the client side of Discover).
pub fn encode_discover(links: &[DiscoverLink]) -> String {
    let links: Vec<Link> = links.iter().map(DiscoverLink::to_link).collect();
    encode_links(&links)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::path::MAX_ID;
    use proptest::prelude::*;

    fn objects(reg: &RegistrationLinks) -> Vec<(u16, Option<&str>, Vec<u16>)> {
        reg.objects
            .iter()
            .map(|(id, o)| {
                (
                    *id,
                    o.version.as_deref(),
                    o.instances.iter().copied().collect(),
                )
            })
            .collect()
    }

    fn err(result: Result<impl fmt::Debug, LinkError>) -> LinkError {
        match result {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e,
        }
    }

    // --- Syntax --------------------------------------------------------------------------------

    #[test]
    fn parses_params_with_quotes_bare_names_and_whitespace() {
        // RFC 6690 §5 style, with the whitespace some clients add around separators.
        let text = " </sensors/temp>;rt=\"temperature-c\";if=sensor ; obs , \r\n</t>;title=\"a, b; \\\"c\\\"\" ";
        let links = parse(text).unwrap();
        assert_eq!(
            links,
            vec![
                Link::new("/sensors/temp")
                    .with_param("rt", Some("temperature-c"))
                    .with_param("if", Some("sensor"))
                    .with_param("obs", None),
                Link::new("/t").with_param("title", Some("a, b; \"c\"")),
            ]
        );
        assert_eq!(links[0].param("RT"), Some(Some("temperature-c")));
        assert_eq!(links[0].param("obs"), Some(None));
        assert_eq!(links[0].param("sz"), None);
    }

    #[test]
    fn empty_payload_is_no_links() {
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse(" \r\n"), Ok(vec![]));
        assert_eq!(
            parse_registration("").unwrap(),
            RegistrationLinks::default()
        );
        assert_eq!(parse_discover(""), Ok(vec![]));
    }

    #[test]
    fn malformed_syntax_reports_the_offset() {
        use LinkErrorKind::*;
        let cases: &[(&str, usize, LinkErrorKind)] = &[
            ("</1/0", 0, UnterminatedTarget),
            ("</1/0>,</3/0", 7, UnterminatedTarget),
            ("</1>;rt=\"oma", 8, UnterminatedQuote),
            ("</1>;rt=\"oma\\", 8, UnterminatedQuote),
            ("</1/0>,", 7, ExpectedLink { found: None }),
            ("</1/0>,,</2>", 7, ExpectedLink { found: Some(',') }),
            ("/1/0", 0, ExpectedLink { found: Some('/') }),
            ("</1/0> </2>", 7, ExpectedSeparator { ch: '<' }),
            ("</1/0>x", 6, ExpectedSeparator { ch: 'x' }),
            ("</1/0>;=5", 7, ExpectedParamName { found: Some('=') }),
            ("</1/0>;", 7, ExpectedParamName { found: None }),
            ("</1/0>;a=", 9, MissingValue { name: "a".into() }),
            ("</1/0>;a=;b", 9, MissingValue { name: "a".into() }),
            ("</1/0>;a=\\x", 9, InvalidValueChar { ch: '\\' }),
            ("</1/0>;a=x\"y\"", 10, ExpectedSeparator { ch: '"' }),
            ("</1 0>", 3, InvalidTargetChar { ch: ' ' }),
            ("</1/é>", 4, InvalidTargetChar { ch: 'é' }),
            ("</1>;t=\"a\nb\"", 9, ControlInQuote { ch: '\n' }),
        ];
        for (text, offset, kind) in cases {
            assert_eq!(
                parse(text),
                Err(LinkError {
                    offset: *offset,
                    kind: kind.clone()
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn encoding_quotes_only_what_needs_it() {
        let links = vec![
            Link::new("/")
                .with_param("rt", Some("oma.lwm2m"))
                .with_param("ct", Some("110")),
            Link::new("/1")
                .with_param("ver", Some("1.1"))
                .with_param("ct", Some("60 110")),
            Link::new("/x")
                .with_param("t", Some("a\"b\\c\u{1}"))
                .with_param("e", Some("")),
            Link::new("/y").with_param("flag", None),
        ];
        let text = encode_links(&links);
        assert_eq!(
            text,
            "</>;rt=\"oma.lwm2m\";ct=110,</1>;ver=1.1;ct=\"60 110\",\
             </x>;t=\"a\\\"b\\\\c\\\u{1}\";e=\"\",</y>;flag"
        );
        assert_eq!(parse(&text), Ok(links));
    }

    // --- Registration (TS Core 1.1 §6.2.1) -----------------------------------------------------

    #[test]
    fn registration_with_root_link_versions_and_object_without_instance() {
        // TS Core 1.1 §6.2.1: root link with rt and ct, object versions on object links.
        let reg = parse_registration(
            "</>;rt=\"oma.lwm2m\";ct=110,</1/0>,</3/0>,</5>;ver=1.1,</1>;ver=1.1",
        )
        .unwrap();
        assert_eq!(reg.root_path, "/");
        assert_eq!(reg.content_formats, vec![110]);
        assert_eq!(
            objects(&reg),
            vec![
                (1, Some("1.1"), vec![0]),
                (3, None, vec![0]),
                (5, Some("1.1"), vec![])
            ]
        );
        assert!(reg.ignored.is_empty());
    }

    #[test]
    fn registration_without_root_link() {
        // TS Core 1.1 §6.2.1 / TS 1.0 §5.3.1: a bare list of instances.
        let reg = parse_registration("</3/0>,</1/101>").unwrap();
        assert_eq!(reg.root_path, "/");
        assert!(reg.content_formats.is_empty());
        assert_eq!(
            objects(&reg),
            vec![(1, None, vec![101]), (3, None, vec![0])]
        );
        assert_eq!(reg.to_link_format(), "</1/101>,</3/0>");
    }

    #[test]
    fn registration_with_alternate_path() {
        // TS Core 1.1 §6.2.1: an alternate root path announced with rt="oma.lwm2m".
        let reg =
            parse_registration("</lwm2m>;rt=\"oma.lwm2m\",</lwm2m/1/101>,</lwm2m/3/0>").unwrap();
        assert_eq!(reg.root_path, "/lwm2m");
        assert_eq!(
            objects(&reg),
            vec![(1, None, vec![101]), (3, None, vec![0])]
        );
        assert_eq!(
            reg.to_link_format(),
            "</lwm2m>;rt=\"oma.lwm2m\",</lwm2m/1/101>,</lwm2m/3/0>"
        );
        // The root link may come anywhere and carry a trailing slash.
        let later = parse_registration("</lwm2m/3/0>,</lwm2m/>;rt=\"oma.lwm2m\"").unwrap();
        assert_eq!(later.root_path, "/lwm2m");
        assert_eq!(objects(&later), vec![(3, None, vec![0])]);
    }

    #[test]
    fn registration_content_formats_as_quoted_list() {
        // TS Core 1.1 §6.2.1: several formats in one quoted, space-separated ct value.
        let reg =
            parse_registration("</>;rt=\"oma.lwm2m\";ct=\"60 110 112 11542\",</3/0>").unwrap();
        assert_eq!(reg.content_formats, vec![60, 110, 112, 11542]);
        assert_eq!(
            reg.to_link_format(),
            "</>;rt=\"oma.lwm2m\";ct=\"60 110 112 11542\",</3/0>"
        );
        // LwM2M 1.0 clients send the root link without rt (TS 1.0 §5.3.1: `</>;ct=11543`).
        let v10 = parse_registration("</>;ct=11543,</3/0>").unwrap();
        assert_eq!(v10.content_formats, vec![11543]);
    }

    #[test]
    fn registration_object_alone_with_version() {
        let reg = parse_registration("</5>;ver=1.1").unwrap();
        assert_eq!(objects(&reg), vec![(5, Some("1.1"), vec![])]);
        assert_eq!(reg.to_link_format(), "</5>;ver=1.1");
    }

    #[test]
    fn registration_skips_links_outside_the_tree_and_says_why() {
        let reg = parse_registration(
            "</lwm2m>;rt=\"oma.lwm2m\",</lwm2m/3/0>,</1/0>,</lwm2m/3/0/1>,</lwm2mx/1>",
        )
        .unwrap();
        assert_eq!(objects(&reg), vec![(3, None, vec![0])]);
        let ignored: Vec<(usize, &str, IgnoredReason)> = reg
            .ignored
            .iter()
            .map(|i| (i.offset, i.target.as_str(), i.reason))
            .collect();
        assert_eq!(
            ignored,
            vec![
                (37, "/1/0", IgnoredReason::OutsideRoot),
                (44, "/lwm2m/3/0/1", IgnoredReason::NotObjectOrInstance),
                (59, "/lwm2mx/1", IgnoredReason::OutsideRoot),
            ]
        );
    }

    #[test]
    fn registration_errors_name_the_link_and_the_offset() {
        let e = err(parse_registration("</3/0>,</3/x>"));
        assert_eq!(e.offset, 8);
        assert!(matches!(
            e.kind,
            LinkErrorKind::InvalidPath {
                source: PathError::NotANumber { .. },
                ..
            }
        ));

        let e = err(parse_registration("</70000/0>"));
        assert_eq!(e.offset, 1);
        assert!(matches!(
            e.kind,
            LinkErrorKind::InvalidPath {
                source: PathError::IdTooLarge { .. },
                ..
            }
        ));

        let e = err(parse_registration("<3/0>"));
        assert!(matches!(
            e.kind,
            LinkErrorKind::InvalidPath {
                source: PathError::NoLeadingSlash { .. },
                ..
            }
        ));

        let e = err(parse_registration(
            "</>;rt=\"oma.lwm2m\";ct=99999999999999999999",
        ));
        assert_eq!(e.offset, 19);
        assert!(matches!(e.kind, LinkErrorKind::InvalidAttribute { ref name, .. } if name == "ct"));

        let e = err(parse_registration("</>;ct=\"110 abc\""));
        assert!(matches!(e.kind, LinkErrorKind::InvalidAttribute { .. }));

        let e = err(parse_registration("</>;ct"));
        assert_eq!(
            e,
            LinkErrorKind::MissingAttributeValue { name: "ct".into() }.at(4)
        );

        let e = err(parse_registration("</1/0>;ver=abc"));
        assert_eq!(e.offset, 7);

        let e = err(parse_registration("</1>;ver=1.1,</1/0>;ver=1.2"));
        assert_eq!(
            e,
            LinkErrorKind::ConflictingVersions {
                object: 1,
                first: "1.1".into(),
                second: "1.2".into()
            }
            .at(20)
        );

        let e = err(parse_registration(
            "</a>;rt=\"oma.lwm2m\",</b>;rt=\"x oma.lwm2m\"",
        ));
        assert_eq!(e, LinkErrorKind::SeveralRoots.at(20));

        let e = err(parse_registration("<lwm2m>;rt=\"oma.lwm2m\""));
        assert_eq!(
            e,
            LinkErrorKind::InvalidRootPath {
                target: "lwm2m".into()
            }
            .at(1)
        );
    }

    // --- Discover (TS Core 1.1 §6.3) -----------------------------------------------------------

    #[test]
    fn discover_output_with_notification_attributes() {
        // TS Core 1.1 §6.3 Discover example shape: attributes on the instance and resources.
        let text = "</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/7>;dim=3;gt=50;lt=42.2;st=0.5,\
                    </3/0/9>;epmin=1;epmax=3600";
        let links = parse_discover(text).unwrap();
        let paths: Vec<Path> = links.iter().map(|l| l.path).collect();
        assert_eq!(
            paths,
            vec![
                Path::Instance(3, 0),
                Path::Resource(3, 0, 1),
                Path::Resource(3, 0, 7),
                Path::Resource(3, 0, 9)
            ]
        );
        assert_eq!(
            links[0].attributes,
            Attributes {
                pmin: Some(10),
                pmax: Some(60),
                ..Default::default()
            }
        );
        assert!(links[1].attributes.is_empty());
        assert_eq!(
            links[2].attributes,
            Attributes {
                dim: Some(3),
                gt: Some(50.0),
                lt: Some(42.2),
                st: Some(0.5),
                ..Default::default()
            }
        );
        assert_eq!(
            links[3].attributes,
            Attributes {
                epmin: Some(1),
                epmax: Some(3600),
                ..Default::default()
            }
        );
        assert_eq!(encode_discover(&links), text);
    }

    #[test]
    fn discover_of_an_object_with_version() {
        let links = parse_discover("</5>;ver=1.1").unwrap();
        assert_eq!(
            links,
            vec![DiscoverLink {
                path: Path::Object(5),
                attributes: Attributes {
                    ver: Some("1.1".into()),
                    ..Default::default()
                }
            }]
        );
    }

    #[test]
    fn bootstrap_discover_with_quoted_numbers_and_unknown_attributes() {
        // Bootstrap-Discover (TS Core 1.1 §6.1) lists the root with lwm2m=, instances with ssid and
        // uri; some clients quote numbers (`ssid="101"`), which is legal link-format syntax.
        let text = "</>;lwm2m=1.1,</0/0>;ssid=\"101\";uri=\"coaps://lwm2m.example.com:5684\",\
                    </1/101>;ssid=101;edge;hqmax=5";
        let links = parse_discover(text).unwrap();
        assert_eq!(links[0].path, Path::Root);
        assert_eq!(links[0].attributes.lwm2m.as_deref(), Some("1.1"));
        assert_eq!(links[1].attributes.ssid, Some(101));
        assert_eq!(
            links[1].attributes.uri.as_deref(),
            Some("coaps://lwm2m.example.com:5684")
        );
        assert_eq!(
            links[2].attributes.other,
            vec![
                ("edge".to_owned(), None),
                ("hqmax".to_owned(), Some("5".to_owned()))
            ]
        );
        assert_eq!(parse_discover(&encode_discover(&links)), Ok(links));
    }

    #[test]
    fn discover_under_an_alternate_root() {
        let links = parse_discover_under("</lwm2m/3/0>;pmin=5,</lwm2m/3/0/0>", "/lwm2m/").unwrap();
        assert_eq!(links[0].path, Path::Instance(3, 0));
        assert_eq!(links[1].path, Path::Resource(3, 0, 0));
        let e = err(parse_discover_under("</3/0>", "/lwm2m"));
        assert_eq!(e.offset, 1);
        assert!(matches!(e.kind, LinkErrorKind::OutsideRoot { .. }));
    }

    #[test]
    fn discover_rejects_bad_paths_and_badly_typed_attributes() {
        let cases: &[(&str, usize)] = &[
            ("</3/0/7/1/2>", 1),
            ("</3/0>,</3/zero>", 8),
            ("</3/0>;pmin=99999999999", 7),
            ("</3/0>;pmin=-1", 7),
            ("</3/0>;gt=1e999", 7),
            ("</3/0>;gt=inf", 7),
            ("</3/0>;lt=NaN", 7),
            ("</3/0>;st", 7),
            ("</3/0>;ssid=65536", 7),
            ("</3>;ver=1", 5),
            ("</3/0>;pmin=1;PMIN=2", 14),
        ];
        for (text, offset) in cases {
            let e = err(parse_discover(text));
            assert_eq!(e.offset, *offset, "{text}: {e}");
        }
        assert!(matches!(
            err(parse_discover("</3/0>;pmin=1;PMIN=2")).kind,
            LinkErrorKind::DuplicateAttribute { .. }
        ));
    }

    #[test]
    fn errors_read_well() {
        let e = err(parse("</1/0>,"));
        assert_eq!(
            e.to_string(),
            "invalid link format at byte 7: expected '<' to start a link, found the end of the payload"
        );
    }

    // --- Properties ----------------------------------------------------------------------------

    fn any_link() -> impl Strategy<Value = Link> {
        let name = "[a-zA-Z0-9!#$&+.^_`|~-]{1,8}";
        let value = proptest::option::of(".{0,12}");
        (
            "/[a-z0-9/._?=&-]{0,16}",
            proptest::collection::vec((name, value), 0..4),
        )
            .prop_map(|(target, params)| Link { target, params })
    }

    fn version() -> impl Strategy<Value = String> {
        "[0-9]{1,3}\\.[0-9]{1,3}"
    }

    fn formats() -> impl Strategy<Value = Vec<u16>> {
        // Distinct values: parsing merges repeated formats.
        proptest::collection::vec(any::<u16>(), 0..4).prop_map(|v| {
            let mut seen = Vec::new();
            for f in v {
                if !seen.contains(&f) {
                    seen.push(f);
                }
            }
            seen
        })
    }

    fn any_registration() -> impl Strategy<Value = RegistrationLinks> {
        let object = (
            proptest::option::of(version()),
            proptest::collection::btree_set(0..=MAX_ID, 0..4),
            formats(),
        )
            .prop_map(|(version, instances, content_formats)| ObjectLinks {
                version,
                instances,
                content_formats,
            });
        (
            prop_oneof![Just("/".to_owned()), "/[a-z]{1,6}(/[a-z0-9]{1,4})?"],
            formats(),
            proptest::collection::btree_map(0..=MAX_ID, object, 0..6),
        )
            .prop_map(|(root_path, content_formats, objects)| RegistrationLinks {
                root_path,
                content_formats,
                objects,
                ignored: vec![],
            })
    }

    fn finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
            -1e6..1e6f64
        ]
    }

    fn any_attributes() -> impl Strategy<Value = Attributes> {
        let other = proptest::collection::vec(
            (
                "[a-z]{1,6}"
                    .prop_filter("unknown name", |n| !KNOWN_ATTRIBUTES.contains(&n.as_str())),
                proptest::option::of("[ -~]{0,8}"),
            ),
            0..3,
        );
        (
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u16>()),
                proptest::option::of(".{0,16}"),
                proptest::option::of(version()),
                proptest::option::of(version()),
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
            ),
            (
                proptest::option::of(finite()),
                proptest::option::of(finite()),
                proptest::option::of(finite()),
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
                other,
            ),
        )
            .prop_map(
                |((dim, ssid, uri, ver, lwm2m, pmin, pmax), (gt, lt, st, epmin, epmax, other))| {
                    Attributes {
                        dim,
                        ssid,
                        uri,
                        ver,
                        lwm2m,
                        pmin,
                        pmax,
                        gt,
                        lt,
                        st,
                        epmin,
                        epmax,
                        other,
                    }
                },
            )
    }

    fn any_path() -> impl Strategy<Value = Path> {
        proptest::collection::vec(0..=MAX_ID, 0..=4)
            .prop_map(|ids| Path::from_ids(&ids).unwrap_or(Path::Root))
    }

    proptest! {
        #[test]
        fn links_round_trip(links in proptest::collection::vec(any_link(), 0..5)) {
            prop_assert_eq!(parse(&encode_links(&links)), Ok(links));
        }

        #[test]
        fn registration_round_trips(reg in any_registration()) {
            prop_assert_eq!(parse_registration(&reg.to_link_format()), Ok(reg));
        }

        #[test]
        fn discover_round_trips(
            links in proptest::collection::vec(
                (any_path(), any_attributes()).prop_map(|(path, attributes)| DiscoverLink { path, attributes }),
                0..5,
            )
        ) {
            prop_assert_eq!(parse_discover(&encode_discover(&links)), Ok(links));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            let _ = parse(&text);
            let _ = parse_registration(&text);
            let _ = parse_discover(&text);
        }

        #[test]
        fn link_shaped_text_never_panics_and_reparses(text in "[</>;=,\" \\\\a-z0-9.é]{0,60}") {
            if let Ok(links) = parse(&text) {
                prop_assert_eq!(parse(&encode_links(&links)), Ok(links));
            }
            if let Ok(mut reg) = parse_registration(&text) {
                reg.ignored.clear();
                prop_assert_eq!(parse_registration(&reg.to_link_format()), Ok(reg));
            }
            let _ = parse_discover_under(&text, "/a");
        }
    }
}
