//! Shared policies on every service: statements owned per custom resource, merged
//! under each service's precondition, against moto (DynamoDB, Kinesis) and the test
//! server (X-Ray, Managed Prometheus, SSM).

use std::time::Duration;

use resource_policy_provider::policy::Policy;
use resource_policy_provider::services::{Expected, Known, PutInput};
use resource_policy_provider::target::Target;
use serde_json::{json, Value};

use super::{trail, world, world_with, World};

const TABLE_ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/orders";
const STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/clicks";
const WORKSPACE_ARN: &str = "arn:aws:aps:us-east-1:123456789012:workspace/ws-shared";
const PARAM_ARN: &str = "arn:aws:ssm:us-east-1:123456789012:parameter/shared/config";

/// One target per service, each created on its peer; the properties that name it.
async fn targets(w: &World) -> Vec<(&'static str, Value)> {
    let ddb = w.app.clients.dynamodb("us-east-1");
    super::create_table(&ddb, "orders", "id").await;
    w.app
        .clients
        .kinesis("us-east-1")
        .create_stream()
        .stream_name("clicks")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    w.server
        .control(
            reqwest::Method::POST,
            "workspaces",
            Some(json!({"workspaceId": "ws-shared"})),
        )
        .await;
    w.server
        .control(
            reqwest::Method::POST,
            "ssm-resources",
            Some(json!({"arn": PARAM_ARN})),
        )
        .await;
    vec![
        ("dynamodb", json!({"ResourceArn": TABLE_ARN})),
        ("kinesis", json!({"ResourceArn": STREAM_ARN})),
        ("xray", json!({"PolicyName": "shared"})),
        ("aps", json!({"ResourceArn": WORKSPACE_ARN})),
        ("ssm", json!({"ResourceArn": PARAM_ARN})),
    ]
}

/// A short statement (SSM allows 1024 bytes for the whole policy).
fn st(sid: &str, action: &str) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": action, "Resource": "*"})
}

/// The shortest statement the grant guard allows (a named account, not `*`): ten of
/// them fit SSM's 1024 bytes in one policy.
fn tiny(sid: &str, action: &str) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": action})
}

fn action(service: &str) -> &'static str {
    match service {
        "dynamodb" => "dynamodb:GetItem",
        "kinesis" => "kinesis:GetRecords",
        "xray" => "xray:PutTraceSegments",
        "aps" => "aps:QueryMetrics",
        _ => "ssm:GetParameter",
    }
}

fn with(target: &Value, statements: Value) -> Value {
    let mut p = target.clone();
    p["Statements"] = statements;
    p
}

fn target_of(props: &Value) -> Target {
    match props.get("ResourceArn").and_then(Value::as_str) {
        Some(arn) => Target::from_arn(arn).unwrap(),
        None => Target::xray(props["PolicyName"].as_str().unwrap(), "us-east-1").unwrap(),
    }
}

fn sids_in(document: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(document).unwrap();
    let list = match &doc["Statement"] {
        Value::Array(items) => items.clone(),
        one => vec![one.clone()],
    };
    list.iter()
        .map(|s| s["Sid"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The Sids in force on the target, in order (empty when there is no policy). An SSM
/// parameter can hold several policies, all in force: their statements together.
async fn live_sids(w: &World, props: &Value) -> Vec<String> {
    if let Some(arn) = props["ResourceArn"]
        .as_str()
        .filter(|a| a.contains(":ssm:"))
    {
        let ssm = w.app.clients.ssm("us-east-1");
        let out = ssm
            .get_resource_policies()
            .resource_arn(arn)
            .send()
            .await
            .unwrap();
        return out
            .policies()
            .iter()
            .flat_map(|p| sids_in(p.policy().unwrap()))
            .collect();
    }
    let live = w
        .app
        .clients
        .read(&target_of(props), &Known::default())
        .await
        .unwrap();
    live.map(|l| sids_in(&l.document)).unwrap_or_default()
}

/// A policy written by hand, straight to the service.
async fn hand_write(w: &World, props: &Value, statements: Vec<Value>) {
    let policy = Policy::from_document(json!({"Version": "2012-10-17", "Statement": statements}));
    let input = PutInput {
        policy: &policy,
        expected: Expected::Anything,
        resendable: true,
        known: &Known::default(),
        confirm_remove_self_resource_access: None,
        bypass_policy_lockout_check: None,
        client_token: "hand",
    };
    w.app.clients.put(&target_of(props), &input).await.unwrap();
}

impl World {
    /// A custom resource request from stack `stack`, resource `logical`; its answer.
    async fn resource(
        &self,
        stack: &str,
        logical: &str,
        kind: &str,
        props: Value,
        physical: Option<&str>,
    ) -> Value {
        let path = format!(
            "{stack}-{logical}-{kind}-{}",
            super::deadline_in(Duration::ZERO)
        );
        let mut e = json!({
            "RequestType": kind,
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider",
            "ResponseURL": self.rec.url(&path),
            "StackId": format!("arn:aws:cloudformation:us-east-1:123456789012:stack/{stack}/guid"),
            "RequestId": format!("req-{path}"),
            "ResourceType": "Custom::SharedPolicy",
            "LogicalResourceId": logical,
            "ResourceProperties": props,
        });
        if let Some(p) = physical {
            e["PhysicalResourceId"] = json!(p);
        }
        self.invoke(&e, Duration::from_secs(60)).await.unwrap();
        let got = self.rec.received(&path);
        assert_eq!(got.len(), 1, "one answer for {path}");
        got[0].body.clone()
    }
}

#[tokio::test]
async fn two_stacks_share_a_target_and_deleting_one_keeps_the_others_on_every_service() {
    let w = world().await;
    for (service, target) in targets(&w).await {
        let a = action(service);
        hand_write(&w, &target, vec![st("Hand", a)]).await;
        let one = w
            .resource(
                "stack-1",
                "Grant",
                "Create",
                with(&target, json!([st("One", a)])),
                None,
            )
            .await;
        assert_eq!(one["Status"], "SUCCESS", "{service}: {one}");
        assert_eq!(one["Data"]["Sids"], "One");
        let two = w
            .resource(
                "stack-2",
                "Grant",
                "Create",
                with(&target, json!([st("Two", a)])),
                None,
            )
            .await;
        assert_eq!(two["Status"], "SUCCESS", "{service}: {two}");
        assert_eq!(
            live_sids(&w, &target).await,
            ["Hand", "One", "Two"],
            "{service}"
        );

        // A Sid another resource owns is a conflict naming it and its owner.
        let clash = w
            .resource(
                "stack-3",
                "Grant",
                "Create",
                with(&target, json!([st("One", "x:Other")])),
                None,
            )
            .await;
        assert_eq!(clash["Status"], "FAILED", "{service}");
        let reason = clash["Reason"].as_str().unwrap();
        assert!(
            reason.contains("\"One\"") && reason.contains("stack-1"),
            "{service}: {reason}"
        );

        let id = one["PhysicalResourceId"].as_str().unwrap();
        let gone = w
            .resource(
                "stack-1",
                "Grant",
                "Delete",
                with(&target, json!([st("One", a)])),
                Some(id),
            )
            .await;
        assert_eq!(gone["Status"], "SUCCESS", "{service}: {gone}");
        assert_eq!(
            live_sids(&w, &target).await,
            ["Hand", "Two"],
            "{service}: the other stack's statement stays"
        );

        let id = two["PhysicalResourceId"].as_str().unwrap();
        w.resource(
            "stack-2",
            "Grant",
            "Delete",
            with(&target, json!([st("Two", a)])),
            Some(id),
        )
        .await;
        assert_eq!(
            live_sids(&w, &target).await,
            ["Hand"],
            "{service}: the hand-written one is kept"
        );
    }
}

#[tokio::test]
async fn ten_owners_created_at_once_end_with_all_ten_statements_on_every_service() {
    // About half of the DynamoDB and Kinesis calls fail first (microburst: every
    // other one throttled), and the test server's writes hit injected throttling and
    // revision conflicts; the concurrent writers add real conflicts of their own.
    let rules = json!([
        {"service": "dynamodb", "operation": "PutResourcePolicy", "sequence": {"fail": 1, "pass": 1},
         "error": {"code": "ThrottlingException"}},
        {"service": "kinesis", "operation": "PutResourcePolicy", "sequence": {"fail": 1, "pass": 1},
         "error": {"code": "LimitExceededException"}},
    ]);
    let w = std::sync::Arc::new(world_with(Some(rules)).await);
    let targets = targets(&w).await;
    for (service, throttle, conflict) in [
        (
            "xray",
            "ThrottledException",
            "InvalidPolicyRevisionIdException",
        ),
        ("aps", "ThrottlingException", "ConflictException"),
        (
            "ssm",
            "ThrottlingException",
            "ResourcePolicyConflictException",
        ),
    ] {
        for error in [throttle, conflict] {
            let mut fault = json!({"service": service, "operation": "PutResourcePolicy", "error": error, "count": 3});
            if error == "ThrottlingException" && service == "ssm" {
                fault["status"] = json!(400);
            }
            w.server
                .control(reqwest::Method::POST, "faults", Some(fault))
                .await;
        }
    }
    for (service, target) in &targets {
        let a = action(service);
        let mut runs = tokio::task::JoinSet::new();
        for i in 0..10 {
            let props = with(target, json!([tiny(&format!("S{i}"), a)]));
            let w = w.clone();
            runs.spawn(async move {
                w.resource(&format!("stack-{i}"), "Grant", "Create", props, None)
                    .await
            });
        }
        while let Some(done) = runs.join_next().await {
            let body = done.unwrap();
            assert_eq!(body["Status"], "SUCCESS", "{service}: {body}");
        }
        let mut sids = live_sids(&w, target).await;
        sids.sort();
        let want: Vec<String> = (0..10).map(|i| format!("S{i}")).collect();
        let row = w
            .app
            .ledger()
            .get(&target_of(target).display_id())
            .await
            .unwrap();
        let recorded: Vec<(String, Vec<String>, bool)> = row
            .map(|r| {
                r.owners
                    .iter()
                    .map(|(k, o)| (k.clone(), o.holding.sids(), o.present))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            sids, want,
            "{service}: every owner's statement is there; the ledger holds {recorded:?}"
        );
    }
    let state = w.server.state().await;
    let failed = state["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["operation"] == "PutResourcePolicy" && c["status"].as_u64().unwrap_or(0) >= 400
        })
        .count();
    assert!(
        failed >= 18,
        "the injected failures were met and survived: {failed}"
    );
    let proxy = w.proxy.as_ref().unwrap();
    for service in ["dynamodb", "kinesis"] {
        let faulted = proxy.faulted(service).await;
        assert!(
            faulted >= 5,
            "microburst failed {service}'s writes: {faulted}"
        );
    }
}

#[tokio::test]
async fn a_repair_restores_owned_statements_and_keeps_hand_added_ones() {
    let w = world().await;
    let target = json!({"PolicyName": "shared"});
    let a = "xray:PutTraceSegments";
    let made = w
        .resource(
            "stack-1",
            "Grant",
            "Create",
            with(&target, json!([st("Owned", a), st("Also", a)])),
            None,
        )
        .await;
    assert_eq!(made["Status"], "SUCCESS", "{made}");
    // By hand: one owned statement removed, another changed, one of their own added.
    hand_write(&w, &target, vec![st("Owned", "xray:*"), st("Hand", a)]).await;
    let event = trail(
        "xray.amazonaws.com",
        "PutResourcePolicy",
        json!({"policyName": "shared"}),
        "arn:aws:iam::123456789012:role/someone-else",
    );
    let out = w.invoke(&event, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out["Status"], "REPAIRED", "{out}");
    let live = w
        .app
        .clients
        .read(&target_of(&target), &Known::default())
        .await
        .unwrap()
        .unwrap();
    let doc: Value = serde_json::from_str(&live.document).unwrap();
    let statements = doc["Statement"].as_array().unwrap();
    assert!(
        statements.contains(&st("Owned", a)),
        "the changed owned statement is put back: {doc}"
    );
    assert!(
        statements.contains(&st("Also", a)),
        "the removed owned statement is back: {doc}"
    );
    assert!(
        statements.contains(&st("Hand", a)),
        "the hand-added statement survives: {doc}"
    );
    assert_eq!(statements.len(), 3, "{doc}");
}

#[tokio::test]
async fn policy_and_statements_never_share_a_target() {
    let w = world().await;
    let target = json!({"PolicyName": "mixed"});
    let a = "xray:PutTraceSegments";
    let whole = json!({"PolicyName": "mixed", "Policy": {"Version": "2012-10-17", "Statement": [st("Whole", a)]}});
    assert_eq!(
        w.resource("stack-1", "Whole", "Create", whole.clone(), None)
            .await["Status"],
        "SUCCESS"
    );
    let shared = w
        .resource(
            "stack-2",
            "Grant",
            "Create",
            with(&target, json!([st("Part", a)])),
            None,
        )
        .await;
    assert_eq!(shared["Status"], "FAILED");
    assert!(
        shared["Reason"]
            .as_str()
            .unwrap()
            .contains("managed as a whole"),
        "{shared}"
    );

    let other = json!({"PolicyName": "mixed2"});
    assert_eq!(
        w.resource(
            "stack-2",
            "Grant",
            "Create",
            with(&other, json!([st("Part", a)])),
            None
        )
        .await["Status"],
        "SUCCESS"
    );
    let mut whole2 = whole.clone();
    whole2["PolicyName"] = json!("mixed2");
    let refused = w.resource("stack-1", "Whole", "Create", whole2, None).await;
    assert_eq!(refused["Status"], "FAILED");
    assert!(
        refused["Reason"].as_str().unwrap().contains("shared"),
        "{refused}"
    );
}
