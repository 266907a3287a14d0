//! Who runs an operator command, and why.

use std::os::unix::fs::MetadataExt;

use crate::error::IssuerError;

/// The operating-system account the command runs under: read from the system, never from a
/// flag, so the history names the login that ran it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator(String);

impl Operator {
    /// The effective user: `/proc/self` is owned by the process's effective uid, and
    /// `/etc/passwd` names it (no `unsafe` getuid call, no extra crate). A uid without a
    /// passwd entry (a container) is recorded as `uid:N`, still the verifiable account.
    pub fn current() -> Result<Operator, IssuerError> {
        let uid = std::fs::metadata("/proc/self")
            .map_err(|e| {
                IssuerError::Operator(vec![format!("operator: cannot read /proc/self: {e}")])
            })?
            .uid();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Ok(Operator(
            user_name(&passwd, uid).unwrap_or_else(|| format!("uid:{uid}")),
        ))
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

/// The name of `uid` in a passwd file (`name:x:uid:gid:...`).
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_owned())
    })
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
    fn passwd_lookup() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nkiosk:x:1001:1001::/home/kiosk:/bin/sh\n";
        assert_eq!(user_name(passwd, 1001).as_deref(), Some("kiosk"));
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 7), None);
    }

    #[test]
    fn reasons_refuse_numbers() {
        assert!(Reason::parse("fee ordinance 2027 no. 12345").is_ok());
        assert!(Reason::parse("call 0312345678").is_err());
        assert!(Reason::parse("").is_err());
        assert!(Reason::parse("a\nb").is_err());
    }
}
