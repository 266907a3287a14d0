//! Who runs an operator command, and why.

use crate::error::IssuerError;

/// The operating-system account the command runs under: read from the system, never from a
/// flag, so the history names the login that ran it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator(String);

impl Operator {
    /// The effective user, named through the system's user database (NSS: LDAP and SSSD
    /// accounts too), written as the gateway's audit events write it (`audit::operator`):
    /// `unix:<name>`, or `unix-uid:<n>` for an account without a name or with one an audit
    /// identifier cannot carry, so one operator reads the same in both logs.
    pub fn current() -> Operator {
        let uid = nix::unistd::geteuid();
        let user = nix::unistd::User::from_uid(uid).ok().flatten();
        Operator(account_label(user.map(|u| u.name).as_deref(), uid.as_raw()))
    }

    /// A named operator, for tests and callers that have already established the account.
    pub fn named(name: &str) -> Operator {
        Operator(name.to_owned())
    }

    /// The account name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `unix:<name>` when that is an audit identifier (`audit::event::Ident`: at most 64 bytes
/// of `[A-Za-z0-9._:/-]`), else `unix-uid:<uid>`: the rule the gateway's events follow.
fn account_label(name: Option<&str>, uid: u32) -> String {
    let label = name.map(|name| format!("unix:{name}"));
    let identifier = |label: &String| {
        label.len() <= 64
            && !label.ends_with(':')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
    };
    label
        .filter(identifier)
        .unwrap_or_else(|| format!("unix-uid:{uid}"))
}

/// Why the operator runs the command.
///
/// Invariant: 1 to 500 characters, no control characters, no run of six or more digits — the
/// rule of `audit::event::ResolutionNote`, repeated here because the issuer must not depend on
/// the audit crate (ARCHITECTURE.md: neither has a path to the other), so that a phone, card or
/// individual number cannot be pasted into the register's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// Validates a reason.
    pub fn parse(text: &str) -> Result<Reason, IssuerError> {
        let refuse = |why: &str| Err(IssuerError::Operator(vec![format!("--reason: {why}")]));
        let count = text.chars().count();
        if count == 0 || count > 500 {
            return refuse("must be 1 to 500 characters");
        }
        if text.chars().any(char::is_control) {
            return refuse("no control characters");
        }
        let mut run = 0;
        for c in text.chars() {
            run = if c.is_numeric() { run + 1 } else { 0 };
            if run >= 6 {
                return refuse("no runs of 6 or more digits (no personal data)");
            }
        }
        Ok(Reason(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_reads_as_in_the_gateways_audit_events() {
        assert_eq!(account_label(Some("kiosk-ops"), 1001), "unix:kiosk-ops");
        assert_eq!(account_label(None, 1001), "unix-uid:1001");
        assert_eq!(account_label(Some("domain user"), 70), "unix-uid:70");
        assert_eq!(account_label(Some(""), 71), "unix-uid:71");
        assert_eq!(account_label(Some(&"a".repeat(60)), 72), "unix-uid:72");
        let uid = nix::unistd::geteuid();
        let expected = match nix::unistd::User::from_uid(uid).unwrap() {
            Some(user) => account_label(Some(&user.name), uid.as_raw()),
            None => format!("unix-uid:{uid}"),
        };
        assert_eq!(Operator::current().as_str(), expected);
        // Cross-check against a second source: the owner of this process's /proc entry.
        let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
        assert_eq!(owner, uid.as_raw());
    }

    #[test]
    fn reasons_refuse_numbers() {
        assert!(Reason::parse("fee ordinance 2027 no. 12345").is_ok());
        assert!(Reason::parse("call 0312345678").is_err());
        assert!(Reason::parse("").is_err());
        assert!(Reason::parse("a\nb").is_err());
    }
}
