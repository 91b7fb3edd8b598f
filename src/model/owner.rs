//! Who owns a grant: a CloudFormation resource or an apply-request sender. The ledger
//! keys every holding by [`Owner::key`]; nothing else names an owner.

use std::fmt;

/// An owner of a whole policy or of statements in a shared one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// A custom resource: its stack and logical id (a physical id can change, these do not).
    Stack {
        stack_id: String,
        logical_id: String,
    },
    /// An EventBridge apply request's sender: the account it came from and its `source`.
    Sender { account: String, source: String },
}

const STACK: &str = "cfn:";
const SENDER: &str = "events:";

impl Owner {
    pub fn stack(stack_id: &str, logical_id: &str) -> Owner {
        Owner::Stack {
            stack_id: stack_id.to_string(),
            logical_id: logical_id.to_string(),
        }
    }

    pub fn sender(account: &str, source: &str) -> Owner {
        Owner::Sender {
            account: account.to_string(),
            source: source.to_string(),
        }
    }

    /// The ledger's key: `cfn:<StackId>/<LogicalResourceId>` or `events:<account>/<source>`.
    /// A StackId is an ARN ending in `/<uuid>` and a logical id has no `/`, so the last
    /// `/` splits a stack key; an account id has no `/`, so the first splits a sender key.
    pub fn key(&self) -> String {
        match self {
            Owner::Stack {
                stack_id,
                logical_id,
            } => format!("{STACK}{stack_id}/{logical_id}"),
            Owner::Sender { account, source } => format!("{SENDER}{account}/{source}"),
        }
    }

    /// A stack owner's region (from its StackId); `None` for a sender.
    pub fn stack_region(&self) -> Option<&str> {
        match self {
            Owner::Stack { stack_id, .. } => stack_id.split(':').nth(3).filter(|r| !r.is_empty()),
            Owner::Sender { .. } => None,
        }
    }

    /// Reads a key back; `None` for a key this function did not make.
    pub fn parse(key: &str) -> Option<Owner> {
        if let Some(rest) = key.strip_prefix(STACK) {
            let (stack, logical) = rest.rsplit_once('/')?;
            return Some(Owner::stack(stack, logical));
        }
        let rest = key.strip_prefix(SENDER)?;
        let (account, source) = rest.split_once('/')?;
        Some(Owner::sender(account, source))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Stack {
                stack_id,
                logical_id,
            } => {
                let stack = stack_id.split('/').nth(1).unwrap_or(stack_id);
                write!(f, "resource {logical_id} of stack {stack}")
            }
            Owner::Sender { account, source } => {
                write!(f, "apply requests from {source} in account {account}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let stack = Owner::stack(
            "arn:aws:cloudformation:us-east-1:123456789012:stack/app/0a1b-2c3d",
            "TablePolicy",
        );
        assert_eq!(Owner::parse(&stack.key()), Some(stack.clone()));
        assert!(stack.to_string().contains("TablePolicy") && stack.to_string().contains("app"));
        assert_eq!(stack.stack_region(), Some("us-east-1"));
        assert_eq!(Owner::stack("not-an-arn", "X").stack_region(), None);
        let sender = Owner::sender("123456789012", "team.payments/deploy");
        assert_eq!(sender.key(), "events:123456789012/team.payments/deploy");
        assert_eq!(sender.stack_region(), None);
        assert_eq!(Owner::parse(&sender.key()), Some(sender));
        assert_eq!(Owner::parse("eventbridge:x/y"), None);
    }
}
