//! Who runs an operator command: the operating-system account of the process, which the
//! operating system vouches for (logins, sudo rules and their own logs), unlike a name typed
//! on the command line. Operator events carry it as their actor.
//!
//! The account is the effective user, looked up through the system's user database (NSS, so
//! LDAP or SSSD accounts are named too). Its id in the audit log is `unix:<name>`, or
//! `unix-uid:<n>` when the account has no name or one the audit identifier alphabet cannot
//! carry: the log never holds a guess.

use crate::event::Ident;

/// The audit identifier of the account this process runs as.
pub fn os_account() -> Ident {
    let uid = nix::unistd::geteuid();
    let by_name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .and_then(|user| Ident::parse(&format!("unix:{}", user.name)).ok());
    by_name.unwrap_or_else(|| {
        Ident::parse(&format!("unix-uid:{uid}")).expect("a number is an identifier")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_effective_account_as_the_system_does() {
        let account = os_account();
        let uid = nix::unistd::geteuid();
        let expected = match nix::unistd::User::from_uid(uid).unwrap() {
            Some(user) => format!("unix:{}", user.name),
            None => format!("unix-uid:{uid}"),
        };
        assert_eq!(account.as_str(), expected);
        // Cross-check against a second source: the owner of this process's /proc entry.
        let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
        assert_eq!(owner, uid.as_raw());
    }
}
