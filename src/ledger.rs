//! The desired-state ledger: one DynamoDB item per target this function manages, so
//! drift repair and the scheduled reconcile know what each policy should be.
//!
//! Every change is marked before its write (`begin`: the item's version goes up and the
//! request is recorded as in flight) and settled after it, with writes conditional on
//! that version: an older request never overwrites a newer one, and a repair never
//! fights a change in flight. The walk's lease and cursor live in one more item.
//!
//! Item layout (partition key `target`, a string):
//!
//! | attribute | meaning |
//! |---|---|
//! | `target` | the target's id: its ARN, or `xray:<region>:policy/<name>` |
//! | `service_key` | `dynamodb`, `kinesis`, `xray`, `aps` or `ssm` |
//! | `desired_request` | the desired request as JSON: ResourceArn or PolicyName and Region, Policy, options |
//! | `desired_policy` | the desired document (compact JSON), for people reading the table |
//! | `owned_by` | `cloudformation:<StackId>/<LogicalResourceId>` or `eventbridge:<source>/<event id>` |
//! | `policy_id` | SSM: the PolicyId of the managed policy |
//! | `last_revision` | the last version the service reported |
//! | `applied_at` | when it was last applied (milliseconds since the epoch) |
//! | `change_version` | goes up by one with every change begun |
//! | `in_flight`, `in_flight_since` | the request whose change is under way, and since when |
//! | `owned_statements` | shared policies: a map from owner to the statements it owns (JSON) |
//!
//! The walk's item (`target` = `#reconcile`) holds `walk_id`, `lease_until`,
//! `walk_cursor`, the counts `walk_checked`, `walk_drift`, `walk_repaired`,
//! `walk_failed`, and `last_walk` / `last_walk_finished_at` once a walk ends.
//! (Names avoid DynamoDB's reserved words, so no expression needs placeholders.)

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::Value;

/// A change older than this is not in flight any more: its invocation is gone
/// (Lambda's longest timeout is 15 minutes).
pub const IN_FLIGHT_STALE: Duration = Duration::from_secs(16 * 60);
const LEASE_KEY: &str = "#reconcile";

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The ledger could not be read or written: the request fails, naming the table.
#[derive(Clone, Debug, thiserror::Error)]
#[error("the ledger (DynamoDB table {table}) could not {operation}: {message}")]
pub struct LedgerError {
    pub table: String,
    pub operation: &'static str,
    pub message: String,
}

/// What the ledger holds for one target.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub target_id: String,
    /// The desired request's properties; `None` while the first change is in flight.
    pub request: Option<Value>,
    pub owner: Option<String>,
    pub policy_id: Option<String>,
    pub revision: Option<String>,
    pub applied_at_ms: Option<u64>,
    pub version: u64,
    /// The request whose change is under way, if one is and it is not stale.
    pub in_flight: Option<String>,
    /// Shared policies: each owner's statements (empty in whole-policy mode).
    pub owned_statements: BTreeMap<String, Vec<Value>>,
}

impl Desired {
    /// Whether the target's policy is managed as a whole (not as shared statements).
    pub fn whole_policy(&self) -> bool {
        self.request
            .as_ref()
            .is_some_and(|r| r.get("Policy").is_some())
    }

    /// The owner of `sid` among the other owners of statements.
    pub fn owner_of(&self, sid: &str, except: &str) -> Option<String> {
        self.owned_statements
            .iter()
            .filter(|(o, _)| o.as_str() != except)
            .find(|(_, st)| {
                st.iter()
                    .any(|s| s.get("Sid").and_then(Value::as_str) == Some(sid))
            })
            .map(|(o, _)| o.clone())
    }
}

/// A change begun: settle or abandon it with this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub target_id: String,
    pub version: u64,
}

/// What a settled put records.
#[derive(Clone, Debug, Default)]
pub struct Settle {
    /// The desired request's properties; `None` keeps what is there (a repair).
    pub request: Option<Value>,
    pub policy_text: Option<String>,
    pub service: Option<String>,
    pub owner: Option<String>,
    pub policy_id: Option<String>,
    pub revision: Option<String>,
}

/// Whether a settle took effect or a newer change had begun meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    Recorded,
    /// A newer change began after this one: it owns the desired state.
    Superseded,
}

/// A reconcile walk's progress, kept across invocations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    pub walk_id: String,
    pub cursor: Option<String>,
    pub counts: Counts,
}

/// What a walk (or one repair) found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub checked: u64,
    pub drift: u64,
    pub repaired: u64,
    pub failed: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.checked += other.checked;
        self.drift += other.drift;
        self.repaired += other.repaired;
        self.failed += other.failed;
    }
}

/// Why a walk could not start or go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkRefused {
    /// Another walk holds the lease.
    Busy { walk_id: String },
    /// The continuation names a walk that is no longer the current one.
    NotCurrent,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &HashMap<String, AttributeValue>, k: &str) -> Option<u64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn is_conditional_failure<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

pub struct Ledger {
    client: Client,
    table: String,
}

impl Ledger {
    pub fn new(client: Client, table: impl Into<String>) -> Ledger {
        Ledger {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn error<E: std::error::Error>(&self, operation: &'static str, e: E) -> LedgerError {
        LedgerError {
            table: self.table.clone(),
            operation,
            message: DisplayErrorContext(e).to_string(),
        }
    }

    fn desired(item: &HashMap<String, AttributeValue>) -> Option<Desired> {
        let stale_before = now_ms().saturating_sub(IN_FLIGHT_STALE.as_millis() as u64);
        let in_flight = get_s(item, "in_flight")
            .filter(|_| get_n(item, "in_flight_since").unwrap_or(0) >= stale_before);
        Some(Desired {
            target_id: get_s(item, "target")?,
            request: get_s(item, "desired_request").and_then(|r| serde_json::from_str(&r).ok()),
            owner: get_s(item, "owned_by"),
            policy_id: get_s(item, "policy_id"),
            revision: get_s(item, "last_revision"),
            applied_at_ms: get_n(item, "applied_at"),
            version: get_n(item, "change_version").unwrap_or(0),
            in_flight,
            owned_statements: item
                .get("owned_statements")
                .and_then(|v| v.as_m().ok())
                .map(|m| {
                    m.iter()
                        .filter_map(|(owner, v)| {
                            let list = serde_json::from_str(v.as_s().ok()?).ok()?;
                            Some((owner.clone(), list))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// What the ledger holds for `target_id` (a consistent read).
    pub async fn get(&self, target_id: &str) -> Result<Option<Desired>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("target", s(target_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("read the target's desired state", e.into_service_error()))?;
        Ok(out.item().and_then(Self::desired))
    }

    /// Marks a change to `target_id` as in flight; CloudFormation and apply requests
    /// always may (they say what the state should be). Returns what the ledger held
    /// (SSM: the PolicyId of the policy this function manages there).
    pub async fn begin(
        &self,
        target_id: &str,
        request_id: &str,
    ) -> Result<(Ticket, Desired), LedgerError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(target_id))
            .update_expression(
                "SET change_version = if_not_exists(change_version, :zero) + :one, in_flight = :req, \
                 in_flight_since = :now, owned_statements = if_not_exists(owned_statements, :none)",
            )
            .expression_attribute_values(":none", AttributeValue::M(HashMap::new()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":req", s(request_id))
            .expression_attribute_values(":now", n(now_ms()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| self.error("mark the change in flight", e.into_service_error()))?;
        let held = out
            .attributes()
            .and_then(Self::desired)
            .ok_or_else(|| LedgerError {
                table: self.table.clone(),
                operation: "mark the change in flight",
                message: "no item came back".into(),
            })?;
        let ticket = Ticket {
            target_id: target_id.to_string(),
            version: held.version,
        };
        Ok((ticket, held))
    }

    /// Marks a repair in flight, only if nothing changed since `seen` was read and no
    /// other change is under way: `None` when something did.
    pub async fn begin_repair(
        &self,
        seen: &Desired,
        request_id: &str,
    ) -> Result<Option<Ticket>, LedgerError> {
        let now = now_ms();
        let stale_before = now.saturating_sub(IN_FLIGHT_STALE.as_millis() as u64);
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(&seen.target_id))
            .update_expression(
                "SET change_version = change_version + :one, in_flight = :req, in_flight_since = :now",
            )
            .condition_expression(
                "change_version = :seen AND (attribute_not_exists(in_flight) OR in_flight_since < :stale)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":seen", n(seen.version))
            .expression_attribute_values(":req", s(request_id))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":stale", n(stale_before))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Some(Ticket {
                target_id: seen.target_id.clone(),
                version: seen.version + 1,
            })),
            Err(e) => {
                let e = e.into_service_error();
                if is_conditional_failure(&e) {
                    Ok(None)
                } else {
                    Err(self.error("mark the repair in flight", e))
                }
            }
        }
    }

    /// Records what a successful put made the desired state, unless a newer change began.
    pub async fn settle_put(
        &self,
        ticket: &Ticket,
        settle: Settle,
    ) -> Result<Settled, LedgerError> {
        let mut set = vec!["applied_at = :now"];
        let mut remove = vec!["in_flight", "in_flight_since"];
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(&ticket.target_id))
            .condition_expression("change_version = :v")
            .expression_attribute_values(":v", n(ticket.version))
            .expression_attribute_values(":now", n(now_ms()));
        let fields = [
            (
                "desired_request",
                ":request",
                settle.request.map(|r| r.to_string()),
            ),
            ("desired_policy", ":policy", settle.policy_text),
            ("service_key", ":service", settle.service),
            ("owned_by", ":owner", settle.owner),
            ("last_revision", ":revision", settle.revision),
        ];
        for (name, placeholder, value) in fields {
            if let Some(v) = value {
                set.push(match name {
                    "desired_request" => "desired_request = :request",
                    "desired_policy" => "desired_policy = :policy",
                    "service_key" => "service_key = :service",
                    "owned_by" => "owned_by = :owner",
                    _ => "last_revision = :revision",
                });
                req = req.expression_attribute_values(placeholder, s(v));
            }
        }
        match settle.policy_id {
            Some(id) => {
                set.push("policy_id = :policy_id");
                req = req.expression_attribute_values(":policy_id", s(id));
            }
            None => remove.push("policy_id"),
        }
        let expr = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
        let r = req.update_expression(expr).send().await;
        self.conditional(
            r.map_err(|e| e.into_service_error()),
            "record the applied policy",
        )
    }

    /// Records (or with `None` removes) `owner`'s statements in a shared policy. Owners
    /// change their own entries only, so concurrent owners never overwrite each other.
    pub async fn settle_statements(
        &self,
        ticket: &Ticket,
        owner: &str,
        statements: Option<&[Value]>,
        target_request: &Value,
        service: &str,
    ) -> Result<(), LedgerError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(&ticket.target_id))
            .expression_attribute_names("#o", owner)
            .expression_attribute_values(":request", s(target_request.to_string()))
            .expression_attribute_values(":service", s(service))
            .expression_attribute_values(":now", n(now_ms()));
        let req = match statements {
            Some(list) => req
                .update_expression(
                    "SET owned_statements.#o = :st, desired_request = :request, \
                     service_key = :service, applied_at = :now",
                )
                .expression_attribute_values(":st", s(Value::from(list.to_vec()).to_string())),
            None => req.update_expression(
                "SET desired_request = :request, service_key = :service, applied_at = :now \
                 REMOVE owned_statements.#o",
            ),
        };
        req.send()
            .await
            .map_err(|e| self.error("record the owned statements", e.into_service_error()))?;
        // The mark is this change's to clear only if no newer change began since.
        let clear = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(&ticket.target_id))
            .update_expression("REMOVE in_flight, in_flight_since")
            .condition_expression("change_version = :v")
            .expression_attribute_values(":v", n(ticket.version))
            .send()
            .await
            .map_err(|e| e.into_service_error());
        self.conditional(clear, "clear the change's mark")?;
        // No owner left: the target is no longer managed.
        let gone = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("target", s(&ticket.target_id))
            .condition_expression(
                "size(owned_statements) = :zero AND attribute_not_exists(in_flight)",
            )
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map_err(|e| e.into_service_error());
        self.conditional(gone, "remove the unmanaged target")?;
        Ok(())
    }

    /// Removes the target after a successful delete, unless a newer change began.
    pub async fn settle_delete(&self, ticket: &Ticket) -> Result<Settled, LedgerError> {
        let r = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("target", s(&ticket.target_id))
            .condition_expression("change_version = :v")
            .expression_attribute_values(":v", n(ticket.version))
            .send()
            .await
            .map_err(|e| e.into_service_error());
        self.conditional(r, "remove the deleted target")
    }

    /// Ends a change that failed: the previous desired state stays (a target never
    /// settled is removed again).
    pub async fn abandon(&self, ticket: &Ticket) -> Result<(), LedgerError> {
        let kept = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(&ticket.target_id))
            .update_expression("REMOVE in_flight, in_flight_since")
            .condition_expression("change_version = :v AND attribute_exists(desired_request)")
            .expression_attribute_values(":v", n(ticket.version))
            .send()
            .await
            .map_err(|e| e.into_service_error());
        if self.conditional(kept, "clear the failed change")? == Settled::Recorded {
            return Ok(());
        }
        let removed = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("target", s(&ticket.target_id))
            .condition_expression("change_version = :v AND attribute_not_exists(desired_request)")
            .expression_attribute_values(":v", n(ticket.version))
            .send()
            .await
            .map_err(|e| e.into_service_error());
        self.conditional(removed, "clear the failed change")
            .map(|_| ())
    }

    /// A conditional write's result: a failed condition means a newer change began.
    fn conditional<O, E>(
        &self,
        r: Result<O, E>,
        operation: &'static str,
    ) -> Result<Settled, LedgerError>
    where
        E: ProvideErrorMetadata + std::error::Error,
    {
        match r {
            Ok(_) => Ok(Settled::Recorded),
            Err(e) => {
                if is_conditional_failure(&e) {
                    Ok(Settled::Superseded)
                } else {
                    Err(self.error(operation, e))
                }
            }
        }
    }

    /// One page of managed targets after `cursor`, and the cursor after it.
    pub async fn page(
        &self,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<Desired>, Option<String>), LedgerError> {
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(limit)
            .consistent_read(true)
            .set_exclusive_start_key(cursor.map(|c| HashMap::from([("target".to_string(), s(c))])))
            .send()
            .await
            .map_err(|e| self.error("list the managed targets", e.into_service_error()))?;
        let items = out
            .items()
            .iter()
            .filter(|i| get_s(i, "target").is_some_and(|t| !t.starts_with('#')))
            .filter_map(Self::desired)
            .collect();
        let next = out.last_evaluated_key().and_then(|k| get_s(k, "target"));
        Ok((items, next))
    }

    /// Starts a walk, unless another one holds an unexpired lease.
    pub async fn start_walk(
        &self,
        walk_id: &str,
        lease: Duration,
    ) -> Result<Result<Walk, WalkRefused>, LedgerError> {
        let now = now_ms();
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(LEASE_KEY))
            .update_expression(
                "SET walk_id = :w, lease_until = :until, walk_checked = :zero, walk_drift = :zero, \
                 walk_repaired = :zero, walk_failed = :zero, started_at = :now REMOVE walk_cursor",
            )
            .condition_expression("attribute_not_exists(walk_id) OR lease_until < :now")
            .expression_attribute_values(":w", s(walk_id))
            .expression_attribute_values(":until", n(now + lease.as_millis() as u64))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Ok(Walk {
                walk_id: walk_id.to_string(),
                ..Walk::default()
            })),
            Err(e) => {
                let e = e.into_service_error();
                if !is_conditional_failure(&e) {
                    return Err(self.error("start the reconcile walk", e));
                }
                let current = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("target", s(LEASE_KEY))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| self.error("read the reconcile lease", e.into_service_error()))?;
                let walk_id = current
                    .item()
                    .and_then(|i| get_s(i, "walk_id"))
                    .unwrap_or_default();
                Ok(Err(WalkRefused::Busy { walk_id }))
            }
        }
    }

    /// Renews the lease of walk `walk_id` and returns its progress.
    pub async fn resume_walk(
        &self,
        walk_id: &str,
        lease: Duration,
    ) -> Result<Result<Walk, WalkRefused>, LedgerError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(LEASE_KEY))
            .update_expression("SET lease_until = :until")
            .condition_expression("walk_id = :w")
            .expression_attribute_values(":w", s(walk_id))
            .expression_attribute_values(":until", n(now_ms() + lease.as_millis() as u64))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match r {
            Ok(out) => {
                let a = out.attributes().cloned().unwrap_or_default();
                Ok(Ok(Walk {
                    walk_id: walk_id.to_string(),
                    cursor: get_s(&a, "walk_cursor"),
                    counts: Counts {
                        checked: get_n(&a, "walk_checked").unwrap_or(0),
                        drift: get_n(&a, "walk_drift").unwrap_or(0),
                        repaired: get_n(&a, "walk_repaired").unwrap_or(0),
                        failed: get_n(&a, "walk_failed").unwrap_or(0),
                    },
                }))
            }
            Err(e) => {
                let e = e.into_service_error();
                if is_conditional_failure(&e) {
                    Ok(Err(WalkRefused::NotCurrent))
                } else {
                    Err(self.error("resume the reconcile walk", e))
                }
            }
        }
    }

    /// Records the walk's progress: where it is and what it found so far.
    pub async fn checkpoint(&self, walk: &Walk, lease: Duration) -> Result<(), LedgerError> {
        let c = walk.counts;
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(LEASE_KEY))
            .condition_expression("walk_id = :w")
            .expression_attribute_values(":w", s(&walk.walk_id))
            .expression_attribute_values(":until", n(now_ms() + lease.as_millis() as u64))
            .expression_attribute_values(":checked", n(c.checked))
            .expression_attribute_values(":drift", n(c.drift))
            .expression_attribute_values(":repaired", n(c.repaired))
            .expression_attribute_values(":failed", n(c.failed));
        let counts = "lease_until = :until, walk_checked = :checked, walk_drift = :drift, \
                      walk_repaired = :repaired, walk_failed = :failed";
        req = match &walk.cursor {
            Some(cursor) => req
                .update_expression(format!("SET {counts}, walk_cursor = :cursor"))
                .expression_attribute_values(":cursor", s(cursor)),
            None => req.update_expression(format!("SET {counts} REMOVE walk_cursor")),
        };
        req.send()
            .await
            .map_err(|e| self.error("record the walk's progress", e.into_service_error()))?;
        Ok(())
    }

    /// Ends the walk and frees the lease.
    pub async fn finish_walk(&self, walk: &Walk) -> Result<(), LedgerError> {
        let c = walk.counts;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("target", s(LEASE_KEY))
            .update_expression(
                "SET last_walk = :w, last_walk_finished_at = :now, walk_checked = :checked, \
                 walk_drift = :drift, walk_repaired = :repaired, walk_failed = :failed \
                 REMOVE walk_id, walk_cursor, lease_until",
            )
            .condition_expression("walk_id = :w")
            .expression_attribute_values(":w", s(&walk.walk_id))
            .expression_attribute_values(":now", n(now_ms()))
            .expression_attribute_values(":checked", n(c.checked))
            .expression_attribute_values(":drift", n(c.drift))
            .expression_attribute_values(":repaired", n(c.repaired))
            .expression_attribute_values(":failed", n(c.failed))
            .send()
            .await
            .map_err(|e| self.error("finish the reconcile walk", e.into_service_error()))?;
        Ok(())
    }
}
