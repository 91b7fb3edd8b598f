//! What the operator configured for the grant guard (template parameters passed in as
//! environment variables). Its own file so the guard's rules never read the process
//! environment: tests and the executor hand a lookup function in.

/// Whether a public grant (a `*` principal no condition pins) may be written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PublicAccess {
    /// Refuse it (the default).
    #[default]
    Refuse,
    /// Let it through: the operator decided public grants are wanted.
    Allow,
}

/// The operator's grant guard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardSettings {
    /// `GUARD_PUBLIC`: `Refuse` (default) or `Allow`.
    pub public: PublicAccess,
    /// `GUARD_ALLOWED_ACCOUNTS`: accounts besides the function's own that principals may
    /// be in. Empty (the default) means any account, unless an organization is set.
    pub allowed_accounts: Vec<String>,
    /// `GUARD_ALLOWED_ORG_ID`: the organization principals may be in (`o-` id).
    pub allowed_org_id: Option<String>,
    /// `GUARD_ALLOW_OVERRIDE`: whether a request may ask to skip the guard. False by
    /// default: a per-request escape is not honoured.
    pub allow_override: bool,
}

impl GuardSettings {
    /// Reads the guard's variables through `lookup`. An unset or blank variable takes
    /// its default (CloudFormation passes an empty parameter as an empty string); any
    /// other value that is not understood is an error naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<GuardSettings, String> {
        let text = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let public = match text("GUARD_PUBLIC") {
            None => PublicAccess::Refuse,
            Some(v) if v.eq_ignore_ascii_case("refuse") => PublicAccess::Refuse,
            Some(v) if v.eq_ignore_ascii_case("allow") => PublicAccess::Allow,
            Some(v) => return Err(format!("GUARD_PUBLIC must be Refuse or Allow, got {v:?}")),
        };
        let allowed_accounts = match text("GUARD_ALLOWED_ACCOUNTS") {
            None => Vec::new(),
            Some(list) => {
                let accounts: Vec<String> = list
                    .split(',')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect();
                if let Some(bad) = accounts.iter().find(|a| !is_account_id(a)) {
                    return Err(format!(
                        "GUARD_ALLOWED_ACCOUNTS must be 12-digit account ids separated by commas, got {bad:?}"
                    ));
                }
                accounts
            }
        };
        let allowed_org_id = match text("GUARD_ALLOWED_ORG_ID") {
            None => None,
            Some(v) if is_org_id(&v) => Some(v),
            Some(v) => {
                return Err(format!(
                    "GUARD_ALLOWED_ORG_ID must be an organization id (o- and 10 to 32 lowercase letters or digits), got {v:?}"
                ))
            }
        };
        let allow_override = match text("GUARD_ALLOW_OVERRIDE") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(format!(
                    "GUARD_ALLOW_OVERRIDE must be true or false, got {v:?}"
                ))
            }
        };
        Ok(GuardSettings {
            public,
            allowed_accounts,
            allowed_org_id,
            allow_override,
        })
    }

    /// True when principals are limited to some accounts or an organization.
    pub(crate) fn restricts_accounts(&self) -> bool {
        !self.allowed_accounts.is_empty() || self.allowed_org_id.is_some()
    }
}

/// Twelve ASCII digits.
pub(crate) fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// AWS Organizations' pattern for an organization id: `^o-[a-z0-9]{10,32}$`.
fn is_org_id(s: &str) -> bool {
    s.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<GuardSettings, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        GuardSettings::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn nothing_set_refuses_public_grants_allows_any_account_and_no_escape() {
        let s = with(&[]).unwrap();
        assert_eq!(s, GuardSettings::default());
        assert_eq!(s.public, PublicAccess::Refuse);
        assert!(s.allowed_accounts.is_empty());
        assert_eq!(s.allowed_org_id, None);
        assert!(!s.allow_override);
        assert!(!s.restricts_accounts());
    }

    #[test]
    fn blank_values_take_the_defaults() {
        let s = with(&[
            ("GUARD_PUBLIC", ""),
            ("GUARD_ALLOWED_ACCOUNTS", " "),
            ("GUARD_ALLOWED_ORG_ID", ""),
            ("GUARD_ALLOW_OVERRIDE", ""),
        ])
        .unwrap();
        assert_eq!(s, GuardSettings::default());
    }

    #[test]
    fn every_variable_is_read() {
        let s = with(&[
            ("GUARD_PUBLIC", "Allow"),
            ("GUARD_ALLOWED_ACCOUNTS", "111122223333, 444455556666,"),
            ("GUARD_ALLOWED_ORG_ID", "o-a1b2c3d4e5"),
            ("GUARD_ALLOW_OVERRIDE", "true"),
        ])
        .unwrap();
        assert_eq!(s.public, PublicAccess::Allow);
        assert_eq!(s.allowed_accounts, ["111122223333", "444455556666"]);
        assert_eq!(s.allowed_org_id.as_deref(), Some("o-a1b2c3d4e5"));
        assert!(s.allow_override);
        assert!(s.restricts_accounts());
        assert_eq!(
            with(&[("GUARD_PUBLIC", "refuse")]).unwrap().public,
            PublicAccess::Refuse
        );
        assert!(
            !with(&[("GUARD_ALLOW_OVERRIDE", "False")])
                .unwrap()
                .allow_override
        );
    }

    #[test]
    fn a_value_not_understood_is_an_error_naming_its_variable() {
        // (variable, value, what the error shows)
        for (name, value, shown) in [
            ("GUARD_PUBLIC", "Maybe", "\"Maybe\""),
            ("GUARD_ALLOWED_ACCOUNTS", "111122223333,12345", "\"12345\""),
            (
                "GUARD_ALLOWED_ACCOUNTS",
                "arn:aws:iam::111122223333:root",
                "\"arn:",
            ),
            ("GUARD_ALLOWED_ORG_ID", "o-short", "\"o-short\""),
            ("GUARD_ALLOWED_ORG_ID", "o-A1B2C3D4E5", "\"o-A1B2C3D4E5\""),
            ("GUARD_ALLOWED_ORG_ID", "r-a1b2c3d4e5", "\"r-a1b2c3d4e5\""),
            ("GUARD_ALLOW_OVERRIDE", "yes", "\"yes\""),
        ] {
            let err = with(&[(name, value)]).unwrap_err();
            assert!(err.starts_with(name), "{err}");
            assert!(err.contains(shown), "{err}");
        }
    }
}
