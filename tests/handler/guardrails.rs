//! Guardrails from event text to answer: no silent takeover, the grant guard on every
//! path, a plan that equals the apply on every service, detect-only drift, and
//! Terraform's `tf.action`.

use std::sync::{Arc, Mutex};

use aws_smithy_mocks::{mock, mock_client, RuleMode};
use resource_policy_provider::ledger::{Holding, NewRecord};
use resource_policy_provider::policy::same_document;
use resource_policy_provider::settings::DriftMode;
use serde_json::{json, Value};

use super::{
    event, harness, harness_configured, props_for, Harness, DDB, POLICY_V1, POLICY_V2, SERVICES,
};

/// A policy somebody wrote by hand before the provider came.
const HAND: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Hand","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"*","Resource":"*"}]}"#;

fn same(a: &str, b: &str) -> bool {
    same_document(
        &serde_json::from_str(a).unwrap(),
        &serde_json::from_str(b).unwrap(),
    )
}

fn with(mut props: Value, key: &str, value: Value) -> Value {
    props[key] = value;
    props
}

/// An apply request as the dedicated bus delivers it.
fn apply(id: &str, detail_type: &str, detail: Value) -> Value {
    json!({"version": "0", "id": id, "detail-type": detail_type, "source": "platform.policies",
        "account": "123456789012", "region": "us-east-1", "resources": [], "detail": detail})
}

/// SSM keeps several policies per parameter: a new owner adds its own, so nothing there
/// is taken over. Every other service has one policy per resource.
fn one_policy_services() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    SERVICES
        .iter()
        .filter(|s| s.0 != "ssm")
        .map(|s| (s.0, s.1, s.2))
}

#[tokio::test]
async fn a_create_over_a_policy_the_function_never_wrote_is_refused_naming_what_is_there() {
    for (service, target, key) in one_policy_services() {
        let h = harness().await;
        h.fakes.store.seed(key, HAND);
        let path = format!("{service}-over");
        let r = h
            .respond(
                &path,
                &event(
                    &h.rec,
                    &path,
                    "Create",
                    props_for(service, POLICY_V1),
                    None,
                    None,
                ),
            )
            .await;
        assert_eq!(r.body["Status"], "FAILED", "{service}: {}", r.body);
        let reason = r.body["Reason"].as_str().unwrap();
        for needle in [
            "not written by this function",
            "1 statement",
            "Hand",
            "TakeOver",
        ] {
            assert!(reason.contains(needle), "{service}: {reason}");
        }
        assert!(
            r.body["PhysicalResourceId"]
                .as_str()
                .unwrap()
                .starts_with("resource-policy-provider:failed-create:"),
            "nothing written: the rollback has nothing to remove"
        );
        assert!(same(&h.fakes.store.holds(key).unwrap(), HAND), "{service}");
        // Judged before it was recorded: no repair ever saw the refused request.
        let item = h.app.ledger().get(target).await.unwrap();
        assert!(item.is_none(), "{service}: nothing recorded: {item:?}");
    }
}

#[tokio::test]
async fn taking_over_keeps_the_prior_document_and_the_delete_puts_it_back() {
    for (service, physical, key) in one_policy_services() {
        let h = harness().await;
        h.fakes.store.seed(key, HAND);
        let take = with(props_for(service, POLICY_V1), "TakeOver", json!("true"));
        let path = format!("{service}-take");
        let r = h
            .respond(
                &path,
                &event(&h.rec, &path, "Create", take.clone(), None, None),
            )
            .await;
        assert_eq!(r.body["Status"], "SUCCESS", "{service}: {}", r.body);
        assert!(same(&h.fakes.store.holds(key).unwrap(), POLICY_V1));
        let item = h.app.ledger().get(physical).await.unwrap().unwrap();
        let prior = item.present()[0].1.prior.clone().unwrap();
        assert!(
            same(&prior.to_string(), HAND),
            "{service}: the prior is recorded"
        );

        let v2 = with(props_for(service, POLICY_V2), "TakeOver", json!("true"));
        let path = format!("{service}-take-update");
        let e = event(
            &h.rec,
            &path,
            "Update",
            v2.clone(),
            Some(physical),
            Some(take),
        );
        assert_eq!(h.respond(&path, &e).await.body["Status"], "SUCCESS");
        assert!(same(&h.fakes.store.holds(key).unwrap(), POLICY_V2));

        let path = format!("{service}-take-delete");
        let e = event(&h.rec, &path, "Delete", v2, Some(physical), None);
        assert_eq!(h.respond(&path, &e).await.body["Status"], "SUCCESS");
        assert!(
            same(&h.fakes.store.holds(key).unwrap(), HAND),
            "{service}: the document taken over is back"
        );
    }
}

#[tokio::test]
async fn an_identical_policy_is_adopted_and_a_retried_create_succeeds() {
    let h = harness().await;
    h.fakes.store.seed(DDB, POLICY_V1);
    let e = event(
        &h.rec,
        "same",
        "Create",
        props_for("dynamodb", POLICY_V1),
        None,
        None,
    );
    // Delivered twice: CloudFormation (or Lambda) retried it.
    h.invoke_raw(&e.to_string()).await.unwrap();
    h.invoke_raw(&e.to_string()).await.unwrap();
    let answers = h.rec.received("same");
    assert_eq!(answers.len(), 2);
    for a in answers {
        assert_eq!(a.body["Status"], "SUCCESS", "{}", a.body);
        assert_eq!(a.body["PhysicalResourceId"], DDB);
    }
}

fn public(sid: &str) -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": sid, "Effect": "Allow",
        "Principal": "*", "Action": "dynamodb:GetItem", "Resource": "*"}]})
    .to_string()
}

fn granting(account: &str) -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "Partner", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "dynamodb:GetItem",
        "Resource": "*"}]})
    .to_string()
}

#[tokio::test]
async fn the_guard_refuses_public_and_foreign_grants_on_cloudformation_and_apply_requests() {
    let h = harness_configured(
        |c| c,
        |s| s.guard.allowed_accounts = vec!["111122223333".into()],
    )
    .await;
    let cases = [
        (
            "public",
            public("Everyone"),
            &["\"Everyone\"", "\"*\"", "public"][..],
        ),
        (
            "foreign",
            granting("999999999999"),
            &["Partner", "999999999999"][..],
        ),
    ];
    for (path, doc, needles) in cases {
        let e = event(
            &h.rec,
            path,
            "Create",
            props_for("dynamodb", &doc),
            None,
            None,
        );
        let r = h.respond(path, &e).await;
        assert_eq!(r.body["Status"], "FAILED", "{}", r.body);
        let reason = r.body["Reason"].as_str().unwrap();
        for n in needles {
            assert!(reason.contains(n), "{path}: {reason}");
        }
        assert_eq!(h.fakes.store.holds(DDB), None, "{path}: nothing written");

        let put = apply(
            path,
            "PutResourcePolicy",
            json!({"ResourceArn": DDB, "Policy": doc}),
        );
        let err = h.invoke_raw(&put.to_string()).await.unwrap_err();
        assert_eq!(err.error_type(), "InvalidRequest");
        assert!(err.to_string().contains("grant guard"), "{err}");
    }
    // Pinned to an organization: not public, allowed.
    let pinned = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Org", "Effect": "Allow",
        "Principal": "*", "Action": "dynamodb:GetItem", "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalAccount": "111122223333"}}}]})
    .to_string();
    let e = event(
        &h.rec,
        "pinned",
        "Create",
        props_for("dynamodb", &pinned),
        None,
        None,
    );
    assert_eq!(h.respond("pinned", &e).await.body["Status"], "SUCCESS");
    // An escape the operator did not allow is not honoured.
    let forced = with(
        props_for("kinesis", &public("Forced")),
        "GuardOverride",
        json!("true"),
    );
    let e = event(&h.rec, "forced", "Create", forced.clone(), None, None);
    assert_eq!(h.respond("forced", &e).await.body["Status"], "FAILED");

    let allowed = harness_configured(|c| c, |s| s.guard.allow_override = true).await;
    let e = event(&allowed.rec, "forced", "Create", forced, None, None);
    assert_eq!(
        allowed.respond("forced", &e).await.body["Status"],
        "SUCCESS"
    );
}

/// A mocked EventBridge that keeps every `ResourcePolicyDrift` event's detail.
fn drift_events() -> (
    aws_sdk_eventbridge::Client,
    Arc<Mutex<Vec<Value>>>,
    aws_smithy_mocks::Rule,
) {
    let sent: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = sent.clone();
    let rule = mock!(aws_sdk_eventbridge::Client::put_events).then_compute_output(move |r| {
        for e in r.entries() {
            assert_eq!(e.detail_type(), Some("ResourcePolicyDrift"));
            assert_eq!(e.source(), Some("resource-policy-provider"));
            sink.lock()
                .unwrap()
                .push(serde_json::from_str(e.detail().unwrap()).unwrap());
        }
        aws_sdk_eventbridge::operation::put_events::PutEventsOutput::builder()
            .failed_entry_count(0)
            .build()
    });
    let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&rule]);
    (client, sent, rule)
}

fn trail(arn: &str) -> Value {
    json!({"version": "0", "id": "trail-1", "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.dynamodb", "account": "123456789012", "region": "us-east-1",
        "detail": {"eventSource": "dynamodb.amazonaws.com", "eventName": "PutResourcePolicy",
            "requestParameters": {"resourceArn": arn},
            "userIdentity": {"arn": "arn:aws:iam::123456789012:user/someone"}}})
}

#[tokio::test]
async fn detect_mode_reports_drift_as_an_event_and_writes_nothing() {
    let (events, sent, _rule) = drift_events();
    let h: Harness = harness_configured(
        |c| c.with_events("us-east-1", events),
        |s| s.drift_mode = DriftMode::Detect,
    )
    .await;
    let e = event(
        &h.rec,
        "d",
        "Create",
        props_for("dynamodb", POLICY_V1),
        None,
        None,
    );
    assert_eq!(h.respond("d", &e).await.body["Status"], "SUCCESS");
    h.fakes.store.seed(DDB, HAND);
    let calls = h.fakes.calls();
    let out = h.invoke_raw(&trail(DDB).to_string()).await.unwrap();
    assert_eq!(out["Status"], "DRIFT_DETECTED", "{out}");
    assert!(
        same(&h.fakes.store.holds(DDB).unwrap(), HAND),
        "nothing written"
    );
    assert_eq!(h.fakes.calls(), calls + 1, "one read, no write");
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["Outcome"], "Detect");
    assert_eq!(sent[0]["Target"], DDB);
    assert_eq!(
        sent[0]["Difference"]["Removed"],
        json!(["Hand"]),
        "{}",
        sent[0]
    );
}

/// An owner whose public grant the ledger recorded while the guard was off.
async fn recorded_public_grant(h: &Harness) {
    let record = NewRecord {
        holding: Holding::Policy(serde_json::from_str(&public("Open")).unwrap()),
        present: true,
        policy_id: None,
        prior: None,
        adopted: false,
        options: Value::Null,
    };
    let owner = "cfn:arn:aws:cloudformation:us-east-1:123456789012:stack/old/1/Open";
    h.app
        .ledger()
        .record(
            DDB,
            &json!({"ResourceArn": DDB}),
            "dynamodb",
            owner,
            &record,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_repair_never_writes_what_the_guard_refuses_and_reports_it() {
    let (events, sent, _rule) = drift_events();
    let h = harness_configured(|c| c.with_events("us-east-1", events), |_| {}).await;
    // An owner recorded a public grant (the guard was off then); the live policy drifted.
    recorded_public_grant(&h).await;
    h.fakes.store.seed(DDB, HAND);
    let out = h.invoke_raw(&trail(DDB).to_string()).await.unwrap();
    assert_eq!(out["Status"], "REPAIR_REFUSED", "{out}");
    assert!(
        out["Reason"].as_str().unwrap().contains("\"Open\""),
        "{out}"
    );
    assert!(
        same(&h.fakes.store.holds(DDB).unwrap(), HAND),
        "nothing written"
    );
    assert_eq!(sent.lock().unwrap()[0]["Outcome"], "Refused");
}

/// A shared statement for `service`'s target.
fn statements_props(service: &str, sid: &str) -> Value {
    let mut p = props_for(service, POLICY_V1);
    let m = p.as_object_mut().unwrap();
    m.remove("Policy");
    m.remove("BypassPolicyLockoutCheck");
    m.remove("ConfirmRemoveSelfResourceAccess");
    m.insert(
        "Statements".into(),
        json!([{"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "111122223333"},
            "Action": "x:Get", "Resource": "*"}]),
    );
    p
}

#[tokio::test]
async fn the_plan_is_what_the_apply_then_writes_on_every_service_whole_and_shared() {
    for (service, _, key, _) in SERVICES {
        for shared in [false, true] {
            let h = harness().await;
            // A hand-written statement is there: a shared plan keeps it in place. (SSM
            // keeps its shared statements in a policy of their own, next to any other;
            // this fake holds one policy per parameter, so none is seeded there.)
            let hand = shared && service != "ssm";
            if hand {
                h.fakes.store.seed(key, HAND);
            }
            let detail = if shared {
                statements_props(service, "Mine")
            } else {
                props_for(service, POLICY_V1)
            };
            let dry = apply(
                "plan",
                "PutResourcePolicy",
                with(detail.clone(), "DryRun", json!(true)),
            );
            let plan = h.invoke_raw(&dry.to_string()).await.unwrap();
            assert_eq!(plan["Status"], "PLANNED", "{service}: {plan}");
            assert_eq!(plan["Changes"], true);
            if shared {
                assert_eq!(plan["Diff"]["Added"], json!(["Mine"]), "{service}: {plan}");
                let kept = if hand { json!(["Hand"]) } else { json!([]) };
                assert_eq!(plan["Diff"]["KeptHandWritten"], kept, "{service}: {plan}");
            } else {
                assert!(h.fakes.store.holds(key).is_none(), "a plan writes nothing");
            }
            let applied = apply("apply", "PutResourcePolicy", detail);
            assert_eq!(
                h.invoke_raw(&applied.to_string()).await.unwrap()["Status"],
                "APPLIED"
            );
            let live = h.fakes.store.holds(key).unwrap();
            assert!(
                same(&live, &plan["Document"].to_string()),
                "{service} shared={shared}: planned {} but wrote {live}",
                plan["Document"]
            );
            // A plan of the same request now has nothing to change.
            let again = h.invoke_raw(&dry.to_string()).await.unwrap();
            assert_eq!(again["Changes"], false, "{service}: {again}");
        }
    }
}

#[tokio::test]
async fn terraform_create_update_and_delete_through_tf_action() {
    let h = harness().await;
    let other = "arn:aws:dynamodb:us-east-1:123456789012:table/other";
    let input = |arn: &str, tf: Value| {
        let mut e = apply(
            "tf",
            "PutResourcePolicy",
            json!({"ResourceArn": arn, "Policy": POLICY_V1}),
        );
        e["tf"] = tf;
        e
    };
    let created = input(DDB, json!({"action": "create", "prev_input": null}));
    assert_eq!(
        h.invoke_raw(&created.to_string()).await.unwrap()["Status"],
        "APPLIED"
    );
    assert!(h.fakes.store.holds(DDB).is_some());
    // An update that moves the policy to another table leaves the first one.
    let mut prev = created.clone();
    prev.as_object_mut().unwrap().remove("tf");
    let moved = input(other, json!({"action": "update", "prev_input": prev}));
    assert_eq!(
        h.invoke_raw(&moved.to_string()).await.unwrap()["Status"],
        "APPLIED"
    );
    assert!(h.fakes.store.holds(other).is_some());
    assert_eq!(
        h.fakes.store.holds(DDB),
        None,
        "the previous target is left"
    );
    // terraform destroy: the same input with tf.action = delete removes it.
    let mut prev = moved.clone();
    prev.as_object_mut().unwrap().remove("tf");
    let destroyed = input(other, json!({"action": "delete", "prev_input": prev}));
    assert_eq!(
        h.invoke_raw(&destroyed.to_string()).await.unwrap()["Status"],
        "DELETED"
    );
    assert_eq!(h.fakes.store.holds(other), None);
}

#[tokio::test]
async fn the_reconcile_reports_a_guarded_document_and_never_writes_it() {
    let (events, sent, _rule) = drift_events();
    let h = harness_configured(
        |c| c.with_events("us-east-1", events),
        |s| s.function_name = Some("provider".into()),
    )
    .await;
    recorded_public_grant(&h).await;
    h.fakes.store.seed(DDB, HAND);
    let walk = json!({"version": "0", "id": "walk-guard", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "region": "us-east-1", "detail": {}});
    let out = h.invoke_raw(&walk.to_string()).await.unwrap();
    assert_eq!(out["Status"], "DONE", "{out}");
    assert_eq!(out["Totals"]["Checked"], 1, "{out}");
    assert_eq!(
        out["Totals"]["Detected"], 1,
        "reported, left in place: {out}"
    );
    assert_eq!(out["Totals"]["Repaired"], 0, "{out}");
    assert!(
        same(&h.fakes.store.holds(DDB).unwrap(), HAND),
        "nothing written"
    );
    assert_eq!(sent.lock().unwrap()[0]["Outcome"], "Refused");
}
