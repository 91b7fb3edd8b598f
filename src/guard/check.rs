//! The grant guard's verdict on one document: which statements grant to whom against
//! which rule. Pure: the executor calls it before every write (CloudFormation, apply
//! requests, repairs, reconcile) and decides what a refusal means there.
//!
//! Decisions that the rules leave open, made here:
//! - Only `Allow` statements are judged: a `Deny` grants nothing, so it is never public
//!   and names nobody who gains access. A statement whose `Effect` is anything but
//!   `Deny` is judged as a grant (a malformed one is refused by the service anyway).
//! - An `Allow` with `NotPrincipal` grants everyone not listed: it is judged as a `*`
//!   principal, named `* except …`.
//! - A public grant under `GUARD_PUBLIC=Allow` is not judged again by the account rule:
//!   it is outside every account set by definition, and `Allow` is the operator's
//!   decision to let it through.
//! - With `GUARD_ALLOWED_ORG_ID` set, a principal named by account (not `*`) is within
//!   the organization only if it is this account, is listed in
//!   `GUARD_ALLOWED_ACCOUNTS`, or the statement pins it with `aws:PrincipalOrgID` (or
//!   `aws:PrincipalOrgPaths`) to that organization: whether an account belongs to an
//!   organization cannot be known without calling AWS Organizations, which this pure
//!   check does not do. So an org-only guard refuses other accounts unless listed.
//! - A principal that is not `*` is still within the allowed set when a condition pins
//!   the statement there (conditions are ANDed, so any one restricting pin suffices):
//!   account and ARN pins by their accounts, organization pins by the organization,
//!   service pins always (services are allowed); VPC and endpoint pins cannot be tied
//!   to an account, so they pin a grant against being public but not within the set.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::pins::{pins, Key, Pin};
use super::principals::{arn_account, principals, texts, Grantee};
use super::settings::{is_account_id, GuardSettings, PublicAccess};
use super::{label, statements};

/// The rule a grant breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Rule {
    /// A `*` principal no condition pins, under `GUARD_PUBLIC=Refuse`.
    Public,
    /// A principal outside this account and `GUARD_ALLOWED_ACCOUNTS`.
    AccountNotAllowed,
    /// A principal not shown to be within `GUARD_ALLOWED_ORG_ID`.
    OrgNotAllowed,
}

/// One refused grant: which statement (its Sid, or `Statement[i]`), which principal,
/// which rule, and a sentence for a CloudFormation Reason or an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Violation {
    /// The statement's Sid, or `Statement[i]` (its index) when it has none.
    pub statement: String,
    /// The principal as the policy names it (`* except …` for a `NotPrincipal`).
    pub principal: String,
    pub rule: Rule,
    /// The whole sentence, as `Display` writes it.
    pub reason: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The grants in `document` the guard refuses; empty means the document may be
/// written. `own_account` is the account the function runs in. A document given as a
/// JSON string is read as the object it holds.
pub fn check(document: &Value, own_account: &str, settings: &GuardSettings) -> Vec<Violation> {
    if let Value::String(text) = document {
        return match serde_json::from_str::<Value>(text) {
            Ok(parsed @ Value::Object(_)) => check(&parsed, own_account, settings),
            _ => Vec::new(),
        };
    }
    let judge = Judge {
        own: own_account,
        settings,
    };
    let mut out = Vec::new();
    for (index, statement) in statements(document).into_iter().enumerate() {
        let Value::Object(map) = statement else {
            continue;
        };
        let deny = map
            .get("Effect")
            .and_then(Value::as_str)
            .is_some_and(|e| e.eq_ignore_ascii_case("deny"));
        if deny {
            continue;
        }
        let at = Statement {
            name: label(statement, index),
            sid: super::sid(statement).is_some(),
            pins: pins(map.get("Condition")),
        };
        if let Some(element) = map.get("Principal") {
            for named in principals(element) {
                judge.grant(&at, &named.text, &named.grantee, &mut out);
            }
        }
        if let Some(element) = map.get("NotPrincipal") {
            let who = format!("* except {}", texts(element).join(", "));
            judge.grant(&at, &who, &Grantee::Anyone, &mut out);
        }
    }
    out
}

/// A statement being judged.
struct Statement {
    name: String,
    sid: bool,
    pins: Vec<Pin>,
}

impl Statement {
    /// `statement "ReadAll"` or `statement Statement[2]`.
    fn called(&self) -> String {
        if self.sid {
            format!("statement {:?}", self.name)
        } else {
            format!("statement {}", self.name)
        }
    }
}

struct Judge<'a> {
    own: &'a str,
    settings: &'a GuardSettings,
}

impl Judge<'_> {
    fn grant(&self, at: &Statement, principal: &str, grantee: &Grantee, out: &mut Vec<Violation>) {
        let violation = |rule, reason: String| Violation {
            statement: at.name.clone(),
            principal: principal.to_string(),
            rule,
            reason,
        };
        let grants = format!("{} grants to principal {principal:?}", at.called());
        match grantee {
            Grantee::Service | Grantee::Orphaned => {}
            Grantee::Anyone if at.pins.is_empty() => {
                if self.settings.public == PublicAccess::Refuse {
                    out.push(violation(
                        Rule::Public,
                        format!(
                            "{grants} without a condition that pins it to accounts, organizations, \
                             source ARNs, VPCs or endpoints (public access is refused: GUARD_PUBLIC=Refuse)"
                        ),
                    ));
                }
            }
            _ if !self.settings.restricts_accounts() => {}
            _ if at.pins.iter().any(|pin| self.within(pin)) => {}
            Grantee::Account(account) if self.account_allowed(account) => {}
            Grantee::Account(account) => {
                let (rule, tail) = if self.settings.allowed_accounts.is_empty() {
                    (
                        Rule::OrgNotAllowed,
                        " (whether an account is in the organization cannot be checked here: \
                         list it in GUARD_ALLOWED_ACCOUNTS or pin the statement with aws:PrincipalOrgID)",
                    )
                } else {
                    (Rule::AccountNotAllowed, "")
                };
                out.push(violation(
                    rule,
                    format!(
                        "{grants} in account {account}, outside {}{tail}",
                        self.allowed()
                    ),
                ));
            }
            Grantee::Anyone | Grantee::Unknown => {
                let rule = if self.settings.allowed_org_id.is_some() {
                    Rule::OrgNotAllowed
                } else {
                    Rule::AccountNotAllowed
                };
                let whose = if *grantee == Grantee::Unknown {
                    ", whose account cannot be told,"
                } else {
                    ""
                };
                out.push(violation(
                    rule,
                    format!(
                        "{grants}{whose} without a condition that pins it within {}",
                        self.allowed()
                    ),
                ));
            }
        }
    }

    /// This account, or one the operator listed.
    fn account_allowed(&self, account: &str) -> bool {
        account == self.own || self.settings.allowed_accounts.iter().any(|a| a == account)
    }

    fn org_allowed(&self, org: &str) -> bool {
        self.settings.allowed_org_id.as_deref() == Some(org)
    }

    /// Whether `pin` keeps every request within the allowed accounts or organization.
    fn within(&self, pin: &Pin) -> bool {
        let all = |ok: &dyn Fn(&str) -> bool| pin.values.iter().all(|v| ok(v));
        match pin.key {
            Key::PrincipalAccount | Key::SourceAccount => all(&|v| self.account_allowed(v)),
            Key::PrincipalArn | Key::SourceArn => {
                all(&|v| arn_account(v).is_some_and(|a| self.account_allowed(a)))
            }
            // The root user's id is its account id; any other user id names no account.
            Key::UserId => all(&|v| is_account_id(v) && self.account_allowed(v)),
            Key::PrincipalOrgId | Key::SourceOrgId => all(&|v| self.org_allowed(v)),
            // o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/
            Key::PrincipalOrgPaths | Key::SourceOrgPaths => {
                all(&|v| v.split('/').next().is_some_and(|o| self.org_allowed(o)))
            }
            Key::PrincipalIsAwsService
            | Key::PrincipalServiceName
            | Key::PrincipalServiceNamesList => true,
            Key::SourceVpc | Key::SourceVpce | Key::Ec2InstanceSourceVpc => false,
        }
    }

    /// The allowed set, for a Reason.
    fn allowed(&self) -> String {
        let own = format!("this account ({})", self.own);
        let accounts = (!self.settings.allowed_accounts.is_empty()).then(|| {
            format!(
                "GUARD_ALLOWED_ACCOUNTS ({})",
                self.settings.allowed_accounts.join(", ")
            )
        });
        let org = self
            .settings
            .allowed_org_id
            .as_ref()
            .map(|o| format!("organization {o} (GUARD_ALLOWED_ORG_ID)"));
        match (accounts, org) {
            (Some(a), Some(o)) => format!("{own}, {a} and {o}"),
            (Some(a), None) => format!("{own} and {a}"),
            (None, Some(o)) => format!("{own} and {o}"),
            (None, None) => own,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OWN: &str = "111122223333";
    const LISTED: &str = "222233334444";
    const OTHER: &str = "444455556666";
    const ORG: &str = "o-a1b2c3d4e5";

    /// The fifteen keys of the public-access definition, each with a fixed value in this
    /// account or organization (or a service), and the operator that pins it.
    const PINS: [(&str, &str, &str); 15] = [
        ("StringEquals", "aws:PrincipalAccount", OWN),
        (
            "ArnEquals",
            "aws:PrincipalArn",
            "arn:aws:iam::111122223333:role/app",
        ),
        ("StringEquals", "aws:PrincipalOrgID", ORG),
        (
            "ForAnyValue:StringEquals",
            "aws:PrincipalOrgPaths",
            "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/",
        ),
        ("StringEquals", "aws:SourceAccount", OWN),
        (
            "ArnLike",
            "aws:SourceArn",
            "arn:aws:sns:eu-west-1:111122223333:topic",
        ),
        ("StringEquals", "aws:SourceVpc", "vpc-1a2b3c4d"),
        ("StringEquals", "aws:SourceVpce", "vpce-1a2b3c4d"),
        ("StringEquals", "aws:UserId", OWN),
        (
            "StringEquals",
            "aws:PrincipalServiceName",
            "sns.amazonaws.com",
        ),
        (
            "ForAnyValue:StringEquals",
            "aws:PrincipalServiceNamesList",
            "sns.amazonaws.com",
        ),
        ("Bool", "aws:PrincipalIsAWSService", "true"),
        ("StringEquals", "aws:Ec2InstanceSourceVpc", "vpc-1a2b3c4d"),
        ("StringEquals", "aws:SourceOrgID", ORG),
        ("StringLike", "aws:SourceOrgPaths", "o-a1b2c3d4e5/r-ab12/"),
    ];

    fn allow(sid: &str, principal: Value) -> Value {
        json!({"Sid": sid, "Effect": "Allow", "Principal": principal, "Action": "kinesis:GetRecords", "Resource": "*"})
    }

    fn with_condition(mut statement: Value, condition: Value) -> Value {
        statement["Condition"] = condition;
        statement
    }

    fn doc(statements: Vec<Value>) -> Value {
        json!({"Version": "2012-10-17", "Statement": statements})
    }

    fn settings(accounts: &[&str], org: Option<&str>) -> GuardSettings {
        GuardSettings {
            allowed_accounts: accounts.iter().map(|a| a.to_string()).collect(),
            allowed_org_id: org.map(str::to_string),
            ..GuardSettings::default()
        }
    }

    /// (statement, principal, rule) of one violation.
    type Verdict = (String, String, Rule);

    /// What a table row says: what it shows, the document, the verdicts expected.
    type Case = (&'static str, Value, Vec<Verdict>);

    fn verdicts(document: &Value, settings: &GuardSettings) -> Vec<Verdict> {
        check(document, OWN, settings)
            .into_iter()
            .map(|v| (v.statement, v.principal, v.rule))
            .collect()
    }

    fn public(statement: &str, principal: &str) -> Vec<Verdict> {
        vec![(statement.into(), principal.into(), Rule::Public)]
    }

    #[test]
    fn public_and_non_public_documents() {
        let any = GuardSettings::default();
        let mut cases: Vec<Case> = vec![
            (
                "a bare * principal",
                doc(vec![allow("ReadAll", json!("*"))]),
                public("ReadAll", "*"),
            ),
            (
                "AWS: *",
                doc(vec![allow("ReadAll", json!({"AWS": "*"}))]),
                public("ReadAll", "*"),
            ),
            (
                "* inside an AWS list",
                doc(vec![allow("Mixed", json!({"AWS": [OWN, "*"]}))]),
                public("Mixed", "*"),
            ),
            (
                "a wildcard inside an ARN",
                doc(vec![allow(
                    "AnyRoot",
                    json!({"AWS": "arn:aws:iam::*:root"}),
                )]),
                public("AnyRoot", "arn:aws:iam::*:root"),
            ),
            (
                "a web-identity provider",
                doc(vec![allow(
                    "Web",
                    json!({"Federated": "cognito-identity.amazonaws.com"}),
                )]),
                public("Web", "Federated cognito-identity.amazonaws.com"),
            ),
            (
                "an Allow with NotPrincipal",
                doc(vec![
                    json!({"Sid": "AllBut", "Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "*", "Resource": "*"}),
                ]),
                public("AllBut", "* except arn:aws:iam::444455556666:root"),
            ),
            (
                "a Deny with NotPrincipal",
                doc(vec![
                    json!({"Sid": "OnlyMe", "Effect": "Deny", "NotPrincipal": {"AWS": OWN}, "Action": "*", "Resource": "*"}),
                ]),
                vec![],
            ),
            (
                "a Deny to everyone",
                doc(vec![
                    json!({"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}),
                ]),
                vec![],
            ),
            (
                "account ids in both forms",
                doc(vec![allow(
                    "Two",
                    json!({"AWS": [OTHER, "arn:aws:iam::444455556666:root"]}),
                )]),
                vec![],
            ),
            (
                "a service",
                doc(vec![allow("Svc", json!({"Service": "sns.amazonaws.com"}))]),
                vec![],
            ),
            (
                "a single statement object, no Sid",
                json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}}),
                public("Statement[0]", "*"),
            ),
            (
                "aws:SourceIp does not pin",
                doc(vec![with_condition(
                    allow("Office", json!("*")),
                    json!({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}),
                )]),
                public("Office", "*"),
            ),
            (
                "IfExists does not pin",
                doc(vec![with_condition(
                    allow("Maybe", json!("*")),
                    json!({"StringEqualsIfExists": {"aws:PrincipalAccount": OWN}}),
                )]),
                public("Maybe", "*"),
            ),
            (
                "ForAllValues does not pin",
                doc(vec![with_condition(
                    allow("Vacuous", json!("*")),
                    json!({"ForAllValues:StringEquals": {"aws:PrincipalServiceNamesList": "sns.amazonaws.com"}}),
                )]),
                public("Vacuous", "*"),
            ),
            (
                "aws:PrincipalIsAWSService false does not pin",
                doc(vec![with_condition(
                    allow("NotSvc", json!("*")),
                    json!({"Bool": {"aws:PrincipalIsAWSService": "false"}}),
                )]),
                public("NotSvc", "*"),
            ),
            (
                "only the unpinned statement is public",
                doc(vec![
                    with_condition(
                        allow("Org", json!("*")),
                        json!({"StringEquals": {"aws:PrincipalOrgID": ORG}}),
                    ),
                    allow("Open", json!({"AWS": "*"})),
                ]),
                public("Open", "*"),
            ),
        ];
        for (operator, key, value) in PINS {
            let pinned =
                with_condition(allow("Pinned", json!("*")), json!({operator: {key: value}}));
            cases.push(("each trusted key pins", doc(vec![pinned]), vec![]));
            if operator != "Bool" {
                for wild in [format!("{value}*"), "${aws:PrincipalAccount}".to_string()] {
                    let loose =
                        with_condition(allow("Loose", json!("*")), json!({operator: {key: wild}}));
                    cases.push((
                        "a wildcard or variable in the value",
                        doc(vec![loose]),
                        public("Loose", "*"),
                    ));
                }
            }
        }
        for (what, document, expected) in cases {
            assert_eq!(verdicts(&document, &any), expected, "{what}: {document}");
        }
    }

    #[test]
    fn public_grants_pass_when_the_operator_allows_them() {
        let allowed = GuardSettings {
            public: PublicAccess::Allow,
            ..settings(&[LISTED], Some(ORG))
        };
        assert!(verdicts(&doc(vec![allow("ReadAll", json!("*"))]), &allowed).is_empty());
        // The account rule still holds for named principals.
        assert_eq!(
            verdicts(
                &doc(vec![allow("Partner", json!({"AWS": OTHER}))]),
                &allowed
            ),
            [(
                "Partner".to_string(),
                OTHER.to_string(),
                Rule::AccountNotAllowed
            )]
        );
    }

    #[test]
    fn allowed_accounts() {
        let s = settings(&[LISTED], None);
        let refused = |statement: &str, principal: &str| {
            vec![(
                statement.to_string(),
                principal.to_string(),
                Rule::AccountNotAllowed,
            )]
        };
        let cases: Vec<Case> = vec![
            (
                "this account and a listed one, in both forms",
                doc(vec![allow(
                    "Ok",
                    json!({"AWS": [OWN, "arn:aws:iam::222233334444:root", "arn:aws:iam::111122223333:role/app"]}),
                )]),
                vec![],
            ),
            (
                "a bare id outside",
                doc(vec![allow("Bare", json!({"AWS": OTHER}))]),
                refused("Bare", OTHER),
            ),
            (
                "a root ARN outside",
                doc(vec![allow(
                    "Root",
                    json!({"AWS": "arn:aws:iam::444455556666:root"}),
                )]),
                refused("Root", "arn:aws:iam::444455556666:root"),
            ),
            (
                "a role outside",
                doc(vec![allow(
                    "Role",
                    json!({"AWS": "arn:aws:iam::444455556666:role/reader"}),
                )]),
                refused("Role", "arn:aws:iam::444455556666:role/reader"),
            ),
            (
                "an assumed-role session outside",
                doc(vec![allow(
                    "Sess",
                    json!({"AWS": "arn:aws:sts::444455556666:assumed-role/reader/s1"}),
                )]),
                refused("Sess", "arn:aws:sts::444455556666:assumed-role/reader/s1"),
            ),
            (
                "a named outsider pinned to this account",
                doc(vec![with_condition(
                    allow("Pinned", json!({"AWS": OTHER})),
                    json!({"StringEquals": {"aws:PrincipalAccount": OWN}}),
                )]),
                vec![],
            ),
            (
                "* pinned to a listed account",
                doc(vec![with_condition(
                    allow("Star", json!("*")),
                    json!({"StringEquals": {"aws:PrincipalAccount": [OWN, LISTED]}}),
                )]),
                vec![],
            ),
            (
                "* pinned to an account outside",
                doc(vec![with_condition(
                    allow("Star", json!("*")),
                    json!({"StringEquals": {"aws:PrincipalAccount": [OWN, OTHER]}}),
                )]),
                refused("Star", "*"),
            ),
            (
                "* pinned by a source ARN outside",
                doc(vec![with_condition(
                    allow("Src", json!("*")),
                    json!({"ArnEquals": {"aws:SourceArn": "arn:aws:sns:eu-west-1:444455556666:t"}}),
                )]),
                refused("Src", "*"),
            ),
            (
                "* pinned by an endpoint only: not tied to an account",
                doc(vec![with_condition(
                    allow("Vpce", json!("*")),
                    json!({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}),
                )]),
                refused("Vpce", "*"),
            ),
            (
                "* pinned by an endpoint and this account",
                doc(vec![with_condition(
                    allow("Both", json!("*")),
                    json!({"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d", "aws:PrincipalAccount": OWN}}),
                )]),
                vec![],
            ),
            (
                "* pinned to services",
                doc(vec![with_condition(
                    allow("Svc", json!("*")),
                    json!({"Bool": {"aws:PrincipalIsAWSService": true}}),
                )]),
                vec![],
            ),
            (
                "a service",
                doc(vec![allow("Svc", json!({"Service": "sns.amazonaws.com"}))]),
                vec![],
            ),
            (
                "a deleted role's id",
                doc(vec![allow("Gone", json!({"AWS": "AROAJQABLZS4A7QSH5ENR"}))]),
                vec![],
            ),
            (
                "a principal whose account cannot be told",
                doc(vec![allow(
                    "Canon",
                    json!({"CanonicalUser": "79a59df900b949e55d96a1e698fbaced"}),
                )]),
                refused("Canon", "CanonicalUser 79a59df900b949e55d96a1e698fbaced"),
            ),
            (
                "a Deny naming an outsider",
                doc(vec![
                    json!({"Effect": "Deny", "Principal": {"AWS": OTHER}, "Action": "*", "Resource": "*"}),
                ]),
                vec![],
            ),
        ];
        for (what, document, expected) in cases {
            assert_eq!(verdicts(&document, &s), expected, "{what}: {document}");
        }
    }

    #[test]
    fn an_allowed_organization() {
        let s = settings(&[], Some(ORG));
        let refused = |statement: &str, principal: &str| {
            vec![(
                statement.to_string(),
                principal.to_string(),
                Rule::OrgNotAllowed,
            )]
        };
        let cases: Vec<Case> = vec![
            (
                "* pinned to the organization",
                doc(vec![with_condition(
                    allow("Org", json!({"AWS": "*"})),
                    json!({"StringEquals": {"aws:PrincipalOrgID": ORG}}),
                )]),
                vec![],
            ),
            (
                "* pinned to a path in the organization",
                doc(vec![with_condition(
                    allow("Ou", json!("*")),
                    json!({"ForAnyValue:StringEquals": {"aws:PrincipalOrgPaths": "o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/"}}),
                )]),
                vec![],
            ),
            (
                "* pinned to another organization",
                doc(vec![with_condition(
                    allow("Org", json!("*")),
                    json!({"StringEquals": {"aws:PrincipalOrgID": "o-zzzzzzzzzz"}}),
                )]),
                refused("Org", "*"),
            ),
            (
                "* pinned to this account",
                doc(vec![with_condition(
                    allow("Me", json!("*")),
                    json!({"StringEquals": {"aws:PrincipalAccount": OWN}}),
                )]),
                vec![],
            ),
            (
                "this account by name",
                doc(vec![allow("Me", json!({"AWS": OWN}))]),
                vec![],
            ),
            (
                "another account: membership cannot be checked, so refused",
                doc(vec![allow(
                    "Peer",
                    json!({"AWS": "arn:aws:iam::444455556666:root"}),
                )]),
                refused("Peer", "arn:aws:iam::444455556666:root"),
            ),
            (
                "another account pinned to the organization",
                doc(vec![with_condition(
                    allow("Peer", json!({"AWS": OTHER})),
                    json!({"StringEquals": {"aws:PrincipalOrgID": ORG}}),
                )]),
                vec![],
            ),
        ];
        for (what, document, expected) in cases {
            assert_eq!(verdicts(&document, &s), expected, "{what}: {document}");
        }
    }

    #[test]
    fn accounts_and_organization_together() {
        let s = settings(&[LISTED], Some(ORG));
        let document = doc(vec![
            allow("Listed", json!({"AWS": LISTED})),
            allow("Peer", json!({"AWS": OTHER})),
            with_condition(
                allow("Elsewhere", json!("*")),
                json!({"StringEquals": {"aws:PrincipalOrgID": "o-zzzzzzzzzz"}}),
            ),
            allow("Open", json!("*")),
        ]);
        assert_eq!(
            verdicts(&document, &s),
            [
                (
                    "Peer".to_string(),
                    OTHER.to_string(),
                    Rule::AccountNotAllowed
                ),
                (
                    "Elsewhere".to_string(),
                    "*".to_string(),
                    Rule::OrgNotAllowed
                ),
                ("Open".to_string(), "*".to_string(), Rule::Public),
            ]
        );
    }

    #[test]
    fn reasons_name_the_statement_the_principal_and_the_rule() {
        let found = check(
            &doc(vec![allow("ReadAll", json!("*"))]),
            OWN,
            &GuardSettings::default(),
        );
        assert_eq!(
            found[0].to_string(),
            r#"statement "ReadAll" grants to principal "*" without a condition that pins it to accounts, organizations, source ARNs, VPCs or endpoints (public access is refused: GUARD_PUBLIC=Refuse)"#
        );
        let found = check(
            &json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": OTHER}, "Action": "*", "Resource": "*"}]}),
            OWN,
            &settings(&[LISTED], None),
        );
        assert_eq!(
            found[0].to_string(),
            "statement Statement[0] grants to principal \"444455556666\" in account 444455556666, \
             outside this account (111122223333) and GUARD_ALLOWED_ACCOUNTS (222233334444)"
        );
        let found = check(
            &doc(vec![allow("Peer", json!({"AWS": OTHER}))]),
            OWN,
            &settings(&[], Some(ORG)),
        );
        assert!(
            found[0].to_string().contains("outside this account (111122223333) and organization o-a1b2c3d4e5 (GUARD_ALLOWED_ORG_ID) (whether an account is in the organization cannot be checked here"),
            "{}",
            found[0]
        );
        assert_eq!(
            serde_json::to_value(&found[0]).unwrap()["Rule"],
            json!("OrgNotAllowed")
        );
        assert_eq!(
            serde_json::to_value(&found[0]).unwrap()["Statement"],
            json!("Peer")
        );
    }

    #[test]
    fn a_document_given_as_text_is_read() {
        let text = Value::String(doc(vec![allow("ReadAll", json!("*"))]).to_string());
        assert_eq!(
            verdicts(&text, &GuardSettings::default()),
            public("ReadAll", "*")
        );
        assert!(verdicts(&json!("not json"), &GuardSettings::default()).is_empty());
    }
}
