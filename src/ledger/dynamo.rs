//! The ledger on DynamoDB. Item layout (partition key `target`, a string):
//!
//! | attribute | meaning |
//! |---|---|
//! | `target` | the target's id: its ARN, or `xray:<region>:policy/<name>` |
//! | `service_key`, `target_request` | the service, and the target's properties (JSON) |
//! | `change_version` | goes up by one with every recorded change |
//! | `shared_policy_id` | SSM, statements: the PolicyId of the shared policy |
//! | `o:<owner>` | the owner's record: a map of `holding` (JSON: `Policy` or `Statements`), `present`, `retired` (JSON list of Sids), `changed_at`, `settled`, `policy_id`, `prior`, `adopted`, `options` |
//! | `v:<owner>` | the `change_version` that recorded the owner's record |
//! | `repairs` | JSON list of recent repair times |
//!
//! Items written before owners had their own attributes (`desired_request`,
//! `owned_by`, `owned_statements`) are read as owners too, and rewritten on prune.
//! The walk's item (`target` = `#reconcile`) holds the reconcile's lease and cursor.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::Value;

use super::record::{Holding, NewRecord, Record, View};
use super::walk::{Counts, Walk, WalkRefused};
use super::{now_ms, LedgerError, Recorded, Settled, IN_FLIGHT_STALE};

const LEASE_KEY: &str = "#reconcile";
const OWNER: &str = "o:";
const VERSION: &str = "v:";
/// Attributes of items written before owners had their own.
const LEGACY: [&str; 9] = [
    "desired_request",
    "desired_policy",
    "owned_by",
    "owned_statements",
    "policy_id",
    "in_flight",
    "in_flight_since",
    "last_revision",
    "applied_at",
];

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn b(v: bool) -> AttributeValue {
    AttributeValue::Bool(v)
}

fn get_s(item: &Item, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n(item: &Item, k: &str) -> Option<u64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn get_b(item: &Item, k: &str) -> bool {
    item.get(k).and_then(|v| v.as_bool().ok()).copied() == Some(true)
}

fn json(item: &Item, k: &str) -> Option<Value> {
    get_s(item, k).and_then(|t| serde_json::from_str(&t).ok())
}

fn is_conditional_failure<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

fn encode(r: &Record) -> AttributeValue {
    let mut m: Item = HashMap::new();
    m.insert("holding".into(), s(r.holding.to_json().to_string()));
    m.insert("present".into(), b(r.present));
    m.insert(
        "retired".into(),
        s(Value::from(r.retired.clone()).to_string()),
    );
    m.insert("changed_at".into(), n(r.changed_at));
    m.insert("settled".into(), b(r.settled));
    m.insert("adopted".into(), b(r.adopted));
    m.insert("options".into(), s(r.options.to_string()));
    if let Some(id) = &r.policy_id {
        m.insert("policy_id".into(), s(id));
    }
    if let Some(p) = &r.prior {
        m.insert("prior".into(), s(p.to_string()));
    }
    AttributeValue::M(m)
}

fn decode(m: &Item, version: u64) -> Option<Record> {
    Some(Record {
        holding: Holding::from_json(&json(m, "holding")?)?,
        present: get_b(m, "present"),
        retired: json(m, "retired")
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
        changed_at: get_n(m, "changed_at").unwrap_or(0),
        version,
        settled: get_b(m, "settled"),
        policy_id: get_s(m, "policy_id"),
        prior: json(m, "prior"),
        adopted: get_b(m, "adopted"),
        options: json(m, "options").unwrap_or(Value::Null),
        legacy: false,
    })
}

/// An owner named the way items written before owners had their own attributes did.
fn legacy_owner(old: &str) -> String {
    match old.strip_prefix("cloudformation:") {
        Some(rest) => format!("cfn:{rest}"),
        None => {
            let source = old.strip_prefix("eventbridge:").unwrap_or(old);
            let source = source.split('/').next().unwrap_or(source);
            format!("events:*/{source}")
        }
    }
}

fn legacy_record(holding: Holding, policy_id: Option<String>) -> Record {
    Record {
        holding,
        present: true,
        retired: Vec::new(),
        changed_at: 0,
        version: 0,
        settled: true,
        policy_id,
        prior: None,
        adopted: false,
        options: Value::Null,
        legacy: true,
    }
}

fn view(item: &Item) -> Option<View> {
    let target_id = get_s(item, "target")?;
    let mut v = View {
        target_id,
        service_key: get_s(item, "service_key"),
        target_request: json(item, "target_request"),
        change_version: get_n(item, "change_version").unwrap_or(0),
        shared_policy_id: get_s(item, "shared_policy_id"),
        repairs: json(item, "repairs")
            .and_then(|r| serde_json::from_value(r).ok())
            .unwrap_or_default(),
        ..View::default()
    };
    // The layout before owners had their own attributes.
    if let Some(req) = json(item, "desired_request") {
        if v.target_request.is_none() {
            let mut t = req.clone();
            if let Some(m) = t.as_object_mut() {
                m.retain(|k, _| matches!(k.as_str(), "ResourceArn" | "PolicyName" | "Region"));
            }
            v.target_request = Some(t);
        }
        if let (Some(p), Some(owner)) = (req.get("Policy"), get_s(item, "owned_by")) {
            let r = legacy_record(Holding::Policy(p.clone()), get_s(item, "policy_id"));
            v.owners.insert(legacy_owner(&owner), r);
        }
    }
    if let Some(m) = item.get("owned_statements").and_then(|m| m.as_m().ok()) {
        for (owner, list) in m {
            let Some(list) = list.as_s().ok().and_then(|t| serde_json::from_str(t).ok()) else {
                continue;
            };
            v.owners.insert(
                legacy_owner(owner),
                legacy_record(Holding::Statements(list), None),
            );
        }
        if v.shared_policy_id.is_none() {
            v.shared_policy_id = get_s(item, "policy_id");
        }
    }
    for (k, attr) in item {
        let Some(owner) = k.strip_prefix(OWNER) else {
            continue;
        };
        let version = get_n(item, &format!("{VERSION}{owner}")).unwrap_or(0);
        if let Some(r) = attr.as_m().ok().and_then(|m| decode(m, version)) {
            v.owners.insert(owner.to_string(), r);
        }
    }
    Some(v)
}

pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoLedger {
        DynamoLedger {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn error<E: std::error::Error + ProvideErrorMetadata>(
        &self,
        operation: &'static str,
        e: E,
    ) -> LedgerError {
        let message = DisplayErrorContext(&e).to_string();
        let too_large = e.code() == Some("ValidationException")
            && message.to_ascii_lowercase().contains("size");
        LedgerError {
            table: self.table.clone(),
            operation,
            message,
            too_large,
        }
    }

    pub async fn get(&self, target_id: &str) -> Result<Option<View>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("target", s(target_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("read the target's owners", e.into_service_error()))?;
        Ok(out.item().and_then(view))
    }

    pub async fn record(
        &self,
        target_id: &str,
        target_request: &Value,
        service_key: &str,
        owner: &str,
        record: &NewRecord,
    ) -> Result<Option<Recorded>, LedgerError> {
        let now = now_ms();
        let base = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(target_id))
            .expression_attribute_names("#o", format!("{OWNER}{owner}"))
            .expression_attribute_names("#v", format!("{VERSION}{owner}"))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":svc", s(service_key))
            .expression_attribute_values(":tr", s(target_request.to_string()))
            .return_values(ReturnValue::AllOld);
        let bump = "#v = if_not_exists(change_version, :zero) + :one, \
                    change_version = if_not_exists(change_version, :zero) + :one, \
                    service_key = :svc, target_request = :tr";
        let gone_known = !record.present && !record.adopted;
        let req = if gone_known {
            base.update_expression(format!(
                "SET #o.present = :false, #o.settled = :false, #o.changed_at = :now, {bump}"
            ))
            .condition_expression("attribute_exists(#o)")
            .expression_attribute_values(":false", b(false))
            .expression_attribute_values(":now", n(now))
        } else {
            let full = encode(&record.clone().into_record(0, now));
            let req = base
                .update_expression(format!("SET #o = :rec, {bump}"))
                .expression_attribute_values(":rec", full);
            if record.adopted {
                req.condition_expression("attribute_not_exists(#o)")
            } else {
                req
            }
        };
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) => {
                let e = e.into_service_error();
                if !is_conditional_failure(&e) {
                    return Err(self.error("record the change", e));
                }
                if gone_known {
                    return Ok(None);
                }
                // An adopted gone record raced a record of the same owner: mark that gone.
                let known = NewRecord {
                    adopted: false,
                    ..record.clone()
                };
                return Box::pin(self.record(
                    target_id,
                    target_request,
                    service_key,
                    owner,
                    &known,
                ))
                .await;
            }
        };
        let before = out.attributes().and_then(view);
        let (after, version) = View::staged(
            before.as_ref(),
            target_id,
            target_request,
            service_key,
            owner,
            record,
            now,
        );
        Ok(Some(Recorded {
            before,
            after,
            version,
        }))
    }

    pub async fn set_prior(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        prior: &Value,
    ) -> Result<(), LedgerError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(target_id))
            .expression_attribute_names("#o", format!("{OWNER}{owner}"))
            .expression_attribute_names("#v", format!("{VERSION}{owner}"))
            // `prior` is one of DynamoDB's reserved words.
            .expression_attribute_names("#p", "prior")
            .update_expression("SET #o.#p = :p")
            .condition_expression("#v = :ver")
            .expression_attribute_values(":p", s(prior.to_string()))
            .expression_attribute_values(":ver", n(version))
            .send()
            .await;
        self.conditional(r, "record the taken-over policy")
            .map(|_| ())
    }

    pub async fn retire(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        retired: &[String],
    ) -> Result<(), LedgerError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(target_id))
            .expression_attribute_names("#o", format!("{OWNER}{owner}"))
            .expression_attribute_names("#v", format!("{VERSION}{owner}"))
            .update_expression(
                "SET #o.retired = :r, #o.changed_at = :now, change_version = change_version + :one",
            )
            .condition_expression("#v = :ver")
            .expression_attribute_values(":r", s(Value::from(retired.to_vec()).to_string()))
            .expression_attribute_values(":now", n(now_ms()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":ver", n(version))
            .send()
            .await;
        self.conditional(r, "record the retired statements")
            .map(|_| ())
    }

    pub async fn undo(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        previous: Option<&Record>,
    ) -> Result<(), LedgerError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(target_id))
            .expression_attribute_names("#o", format!("{OWNER}{owner}"))
            .expression_attribute_names("#v", format!("{VERSION}{owner}"))
            .condition_expression("#v = :ver")
            .expression_attribute_values(":ver", n(version))
            .expression_attribute_values(":one", n(1));
        let req = match previous.filter(|p| !p.legacy) {
            Some(p) => req
                .update_expression(
                    "SET #o = :rec, #v = :pv, change_version = change_version + :one",
                )
                .expression_attribute_values(":rec", encode(p))
                .expression_attribute_values(":pv", n(p.version)),
            None => {
                req.update_expression("SET change_version = change_version + :one REMOVE #o, #v")
            }
        };
        self.conditional(req.send().await, "undo the refused change")
            .map(|_| ())
    }

    pub async fn settle(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        policy_id: Option<&str>,
    ) -> Result<Settled, LedgerError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(target_id))
            .expression_attribute_names("#o", format!("{OWNER}{owner}"))
            .expression_attribute_names("#v", format!("{VERSION}{owner}"))
            .condition_expression("#v = :ver")
            .expression_attribute_values(":ver", n(version))
            .expression_attribute_values(":true", b(true))
            .return_values(ReturnValue::AllNew);
        req = match policy_id {
            Some(id) => req
                .update_expression("SET #o.settled = :true, #o.policy_id = :pid")
                .expression_attribute_values(":pid", s(id)),
            None => req.update_expression("SET #o.settled = :true"),
        };
        match req.send().await {
            Ok(out) => Ok(Settled {
                applied: true,
                latest: out.attributes().and_then(view),
            }),
            Err(e) => {
                let e = e.into_service_error();
                if !is_conditional_failure(&e) {
                    return Err(self.error("settle the change", e));
                }
                Ok(Settled {
                    applied: false,
                    latest: self.get(target_id).await?,
                })
            }
        }
    }

    pub async fn set_shared_policy_id(
        &self,
        target_id: &str,
        expected: Option<&str>,
        policy_id: Option<&str>,
    ) -> Result<bool, LedgerError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(target_id));
        req = match expected {
            Some(e) => req
                .condition_expression("shared_policy_id = :e")
                .expression_attribute_values(":e", s(e)),
            None => req.condition_expression("attribute_not_exists(shared_policy_id)"),
        };
        req = match policy_id {
            Some(id) => req
                .update_expression("SET shared_policy_id = :id")
                .expression_attribute_values(":id", s(id)),
            None => req.update_expression("REMOVE shared_policy_id"),
        };
        let r = self.conditional(req.send().await, "record the shared SSM policy's id")?;
        Ok(r)
    }

    pub async fn set_owner_policy_id(
        &self,
        target_id: &str,
        owner: &str,
        version: u64,
        policy_id: &str,
    ) -> Result<(), LedgerError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(target_id))
            .expression_attribute_names("#o", format!("{OWNER}{owner}"))
            .expression_attribute_names("#v", format!("{VERSION}{owner}"))
            .update_expression("SET #o.policy_id = :pid")
            .condition_expression("#v = :ver")
            .expression_attribute_values(":pid", s(policy_id))
            .expression_attribute_values(":ver", n(version))
            .send()
            .await;
        self.conditional(r, "record the repaired SSM policy's id")
            .map(|_| ())
    }

    pub async fn note_repairs(&self, target_id: &str, times: &[u64]) -> Result<(), LedgerError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("target", s(target_id))
            .update_expression("SET repairs = :r")
            .condition_expression("attribute_exists(target)")
            .expression_attribute_values(":r", s(Value::from(times.to_vec()).to_string()))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                let e = e.into_service_error();
                if is_conditional_failure(&e) {
                    Ok(())
                } else {
                    Err(self.error("record the repair", e))
                }
            })
    }

    pub async fn prune(&self, seen: &View, now: u64) -> Result<(), LedgerError> {
        let old = now.saturating_sub(IN_FLIGHT_STALE.as_millis() as u64);
        let legacy = seen.owners.values().any(|r| r.legacy);
        let drop: Vec<&String> = seen
            .owners
            .iter()
            .filter(|(_, r)| !r.present && r.changed_at <= old)
            .map(|(k, _)| k)
            .collect();
        let clear: Vec<&String> = seen
            .owners
            .iter()
            .filter(|(_, r)| r.present && !r.retired.is_empty() && r.changed_at <= old)
            .map(|(k, _)| k)
            .collect();
        if drop.is_empty() && clear.is_empty() && !legacy {
            return Ok(());
        }
        if drop.len() == seen.owners.len() {
            let r = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("target", s(&seen.target_id))
                .condition_expression(
                    "change_version = :seen OR attribute_not_exists(change_version)",
                )
                .expression_attribute_values(":seen", n(seen.change_version))
                .send()
                .await;
            return self
                .conditional(r, "remove the unmanaged target")
                .map(|_| ());
        }
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("target", s(&seen.target_id))
            .condition_expression("change_version = :seen OR attribute_not_exists(change_version)")
            .expression_attribute_values(":seen", n(seen.change_version))
            .expression_attribute_values(":none", s("[]"));
        let mut set = vec!["change_version = :seen".to_string()];
        let mut remove: Vec<String> = Vec::new();
        for (i, k) in drop.iter().enumerate() {
            req = req
                .expression_attribute_names(format!("#d{i}"), format!("{OWNER}{k}"))
                .expression_attribute_names(format!("#dv{i}"), format!("{VERSION}{k}"));
            remove.push(format!("#d{i}"));
            remove.push(format!("#dv{i}"));
        }
        for (i, k) in clear.iter().enumerate() {
            req = req.expression_attribute_names(format!("#c{i}"), format!("{OWNER}{k}"));
            set.push(format!("#c{i}.retired = :none"));
        }
        if legacy {
            // Rewrite the owners read from the old layout as records of their own.
            for (i, (k, r)) in seen
                .owners
                .iter()
                .filter(|(k, r)| r.legacy && !drop.contains(k))
                .enumerate()
            {
                req = req
                    .expression_attribute_names(format!("#l{i}"), format!("{OWNER}{k}"))
                    .expression_attribute_names(format!("#lv{i}"), format!("{VERSION}{k}"))
                    .expression_attribute_values(format!(":l{i}"), encode(r))
                    .expression_attribute_values(":zero", n(0));
                set.push(format!("#l{i} = :l{i}"));
                set.push(format!("#lv{i} = :zero"));
            }
            remove.extend(LEGACY.iter().map(|a| a.to_string()));
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let r = req.update_expression(expr).send().await;
        self.conditional(r, "prune the target's owners").map(|_| ())
    }

    /// A conditional write's result: `false` when its condition failed.
    fn conditional<O, E>(
        &self,
        r: Result<O, aws_sdk_dynamodb::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
        operation: &'static str,
    ) -> Result<bool, LedgerError>
    where
        E: ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + aws_smithy_runtime_api::client::result::CreateUnhandledError
            + 'static,
    {
        match r {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = e.into_service_error();
                if is_conditional_failure(&e) {
                    Ok(false)
                } else {
                    Err(self.error(operation, e))
                }
            }
        }
    }

    pub async fn page(
        &self,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<View>, Option<String>), LedgerError> {
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
            .filter_map(view)
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
                        ..Counts::default()
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
