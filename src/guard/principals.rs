//! Who a statement's `Principal` (or `NotPrincipal`) names, sorted into what the guard's
//! two rules need to know: anyone (a wildcard), an account, a service, or something
//! whose account cannot be told. Its own file because IAM spells one account several
//! ways (a bare id, `arn:<partition>:iam::<id>:root`, a role or user ARN, an STS
//! assumed-role ARN) and every rule must read them alike.

use serde_json::Value;

use super::settings::is_account_id;

/// What one principal value grants to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Grantee {
    /// Anyone: `*`, a value holding a wildcard, or a web-identity provider (anyone who
    /// signs in with it; S3 Block Public Access counts a `Federated` principal as public).
    Anyone,
    /// A principal in this account.
    Account(String),
    /// An AWS service (`Service`): allowed by every rule.
    Service,
    /// The unique id IAM leaves in a policy when the user or role it named is deleted
    /// (`AIDA…`, `AROA…`). It matches no principal any more, a new one of the same name
    /// included, so it grants nothing and no rule refuses it.
    Orphaned,
    /// A named principal whose account cannot be told from its text (`CanonicalUser`, an
    /// unknown principal type, a malformed value).
    Unknown,
}

/// One principal value: its text as the policy gives it (prefixed with its type when
/// that is not `AWS`) and what it grants to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Named {
    pub text: String,
    pub grantee: Grantee,
}

/// Every principal a `Principal` element names, in document order.
pub(crate) fn principals(element: &Value) -> Vec<Named> {
    match element {
        Value::Object(map) => map
            .iter()
            .flat_map(|(kind, values)| {
                values_of(values)
                    .into_iter()
                    .map(move |value| classify(kind, &value))
            })
            .collect(),
        // `"Principal": "*"` is `{"AWS": "*"}`; any other bare string is read as an AWS
        // principal too.
        Value::String(s) => vec![classify("AWS", s)],
        other => vec![Named {
            text: other.to_string(),
            grantee: Grantee::Unknown,
        }],
    }
}

/// The principal values of a `NotPrincipal` element, as text, to name who an Allow
/// with it leaves out.
pub(crate) fn texts(element: &Value) -> Vec<String> {
    principals(element).into_iter().map(|n| n.text).collect()
}

/// A single value or a list of values, as strings (numbers as their digits).
fn values_of(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().flat_map(values_of).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Null => Vec::new(),
        other => vec![other.to_string()],
    }
}

fn classify(kind: &str, value: &str) -> Named {
    let text = if kind == "AWS" {
        value.to_string()
    } else {
        format!("{kind} {value}")
    };
    let grantee = if has_wildcard(value) {
        Grantee::Anyone
    } else {
        match kind {
            "AWS" => aws(value),
            "Service" => Grantee::Service,
            "Federated" => match arn_account(value) {
                // A SAML or OIDC provider ARN lives in an account.
                Some(account) => Grantee::Account(account.to_string()),
                // accounts.google.com, cognito-identity.amazonaws.com, …: whoever signs in.
                None => Grantee::Anyone,
            },
            _ => Grantee::Unknown,
        }
    };
    Named { text, grantee }
}

/// An `AWS` principal: a bare account id, an ARN with an account (`iam::<id>:root`,
/// `iam::<id>:role/…`, `iam::<id>:user/…`, `sts::<id>:assumed-role/…`), or the unique
/// id of a deleted user or role.
fn aws(value: &str) -> Grantee {
    if is_account_id(value) {
        Grantee::Account(value.to_string())
    } else if let Some(account) = arn_account(value) {
        Grantee::Account(account.to_string())
    } else if is_unique_id(value) {
        Grantee::Orphaned
    } else {
        Grantee::Unknown
    }
}

/// `*` or `?` anywhere: IAM's wildcards.
pub(crate) fn has_wildcard(value: &str) -> bool {
    value.contains(['*', '?'])
}

/// The account field of an ARN (`arn:<partition>:<service>:<region>:<account>:…`), when
/// it is a 12-digit id.
pub(crate) fn arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, _partition, _service, _region, account, _rest) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (prefix == "arn" && is_account_id(account)).then_some(account)
}

/// An IAM user's or role's unique id, as IAM shows it once the principal is deleted.
fn is_unique_id(value: &str) -> bool {
    (value.starts_with("AIDA") || value.starts_with("AROA"))
        && (16..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grantees(element: Value) -> Vec<Grantee> {
        principals(&element)
            .into_iter()
            .map(|n| n.grantee)
            .collect()
    }

    fn account(id: &str) -> Grantee {
        Grantee::Account(id.into())
    }

    #[test]
    fn one_account_in_every_spelling() {
        for p in [
            "111122223333",
            "arn:aws:iam::111122223333:root",
            "arn:aws-cn:iam::111122223333:root",
            "arn:aws-us-gov:iam::111122223333:role/path/app",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:sts::111122223333:assumed-role/app/session-1",
        ] {
            assert_eq!(
                grantees(json!({"AWS": p})),
                [account("111122223333")],
                "{p}"
            );
        }
    }

    #[test]
    fn a_star_anywhere_is_anyone() {
        assert_eq!(grantees(json!("*")), [Grantee::Anyone]);
        assert_eq!(grantees(json!({"AWS": "*"})), [Grantee::Anyone]);
        assert_eq!(
            grantees(json!({"AWS": ["111122223333", "*"]})),
            [account("111122223333"), Grantee::Anyone]
        );
        assert_eq!(
            grantees(json!({"AWS": "arn:aws:iam::*:root"})),
            [Grantee::Anyone]
        );
        assert_eq!(
            grantees(json!({"AWS": "arn:aws:iam::111122223333:role/*"})),
            [Grantee::Anyone]
        );
        assert_eq!(grantees(json!({"Service": "*"})), [Grantee::Anyone]);
    }

    #[test]
    fn services_web_identities_deleted_principals_and_the_rest() {
        assert_eq!(
            grantees(json!({"Service": ["logs.amazonaws.com", "delivery.logs.amazonaws.com"]})),
            [Grantee::Service, Grantee::Service]
        );
        assert_eq!(
            grantees(json!({"Federated": "cognito-identity.amazonaws.com"})),
            [Grantee::Anyone]
        );
        assert_eq!(
            grantees(json!({"Federated": "arn:aws:iam::111122223333:saml-provider/corp"})),
            [account("111122223333")]
        );
        assert_eq!(
            grantees(json!({"AWS": "AROAJQABLZS4A7QSH5ENR"})),
            [Grantee::Orphaned]
        );
        assert_eq!(
            grantees(json!({"CanonicalUser": "79a59df900b949e55d96a1e698fbaced"})),
            [Grantee::Unknown]
        );
        assert_eq!(grantees(json!({"AWS": "alice"})), [Grantee::Unknown]);
        assert_eq!(grantees(json!(["111122223333"])), [Grantee::Unknown]);
    }

    #[test]
    fn texts_name_the_type_when_it_is_not_aws() {
        let named = principals(&json!({"AWS": "111122223333", "Service": "sns.amazonaws.com"}));
        let texts: Vec<&str> = named.iter().map(|n| n.text.as_str()).collect();
        assert_eq!(texts, ["111122223333", "Service sns.amazonaws.com"]);
    }

    #[test]
    fn arn_accounts() {
        assert_eq!(
            arn_account("arn:aws:sns:eu-west-1:111122223333:topic"),
            Some("111122223333")
        );
        assert_eq!(arn_account("arn:aws:s3:::bucket"), None);
        assert_eq!(arn_account("arn:aws:iam::1111:root"), None);
        assert_eq!(arn_account("111122223333"), None);
    }
}
