//! Mocked clients for all five services sharing one in-memory policy store, so the
//! whole handler can create, read back and delete on every service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_smithy_mocks::{mock, mock_client, MockResponse, Rule, RuleMode};
use resource_policy_provider::services::Clients;

use crate::wire::{json_error, rest_error};

/// Policies by id, each with a revision counter.
#[derive(Clone, Default)]
pub struct Store(Arc<Mutex<HashMap<String, (String, u32)>>>);

impl Store {
    fn put(&self, id: &str, doc: &str) -> u32 {
        let mut m = self.0.lock().unwrap();
        let rev = m.get(id).map_or(1, |(_, r)| r + 1);
        m.insert(id.to_string(), (doc.to_string(), rev));
        rev
    }
    fn get(&self, id: &str) -> Option<(String, u32)> {
        self.0.lock().unwrap().get(id).cloned()
    }
    fn remove(&self, id: &str) -> bool {
        self.0.lock().unwrap().remove(id).is_some()
    }
    /// A policy written by someone else (by hand, another tool) before the test.
    pub fn seed(&self, id: &str, doc: &str) {
        self.put(id, doc);
    }
    pub fn holds(&self, id: &str) -> Option<String> {
        self.get(id).map(|(d, _)| d)
    }
}

/// Every rule made, so tests can count calls.
pub struct Fakes {
    pub store: Store,
    pub rules: Vec<Rule>,
}

impl Fakes {
    pub fn calls(&self) -> usize {
        self.rules.iter().map(Rule::num_calls).sum()
    }
}

pub fn clients(fakes: &mut Fakes) -> Clients {
    use aws_sdk_amp as amp;
    use aws_sdk_dynamodb as ddb;
    use aws_sdk_kinesis as kin;
    use aws_sdk_ssm as ssm;
    use aws_sdk_xray as xray;
    let s = fakes.store.clone();

    let (a, b, c) = (s.clone(), s.clone(), s.clone());
    let ddb_rules = vec![
        mock!(ddb::Client::put_resource_policy).then_compute_output(move |r| {
            let rev = a.put(r.resource_arn().unwrap(), r.policy().unwrap());
            ddb::operation::put_resource_policy::PutResourcePolicyOutput::builder()
                .revision_id(rev.to_string())
                .build()
        }),
        mock!(ddb::Client::get_resource_policy).then_compute_response(move |r| {
            match b.get(r.resource_arn().unwrap()) {
                Some((doc, rev)) => MockResponse::Output(
                    ddb::operation::get_resource_policy::GetResourcePolicyOutput::builder()
                        .policy(doc)
                        .revision_id(rev.to_string())
                        .build(),
                ),
                None => MockResponse::Http(json_error(400, "PolicyNotFoundException", "no policy")),
            }
        }),
        mock!(ddb::Client::delete_resource_policy).then_compute_response(move |r| {
            if c.remove(r.resource_arn().unwrap()) {
                MockResponse::Output(
                    ddb::operation::delete_resource_policy::DeleteResourcePolicyOutput::builder()
                        .build(),
                )
            } else {
                MockResponse::Http(json_error(400, "PolicyNotFoundException", "no policy"))
            }
        }),
    ];

    let (a, b, c) = (s.clone(), s.clone(), s.clone());
    let kin_rules = vec![
        mock!(kin::Client::put_resource_policy).then_compute_output(move |r| {
            a.put(r.resource_arn().unwrap(), r.policy().unwrap());
            kin::operation::put_resource_policy::PutResourcePolicyOutput::builder().build()
        }),
        mock!(kin::Client::get_resource_policy).then_compute_output(move |r| {
            let doc = b
                .get(r.resource_arn().unwrap())
                .map(|(d, _)| d)
                .unwrap_or_default();
            kin::operation::get_resource_policy::GetResourcePolicyOutput::builder()
                .policy(doc)
                .build()
                .unwrap()
        }),
        mock!(kin::Client::delete_resource_policy).then_compute_output(move |r| {
            c.remove(r.resource_arn().unwrap());
            kin::operation::delete_resource_policy::DeleteResourcePolicyOutput::builder().build()
        }),
    ];

    let (a, b, c) = (s.clone(), s.clone(), s.clone());
    let xray_rules = vec![
        mock!(xray::Client::put_resource_policy).then_compute_output(move |r| {
            let name = r.policy_name().unwrap();
            let rev = a.put(&format!("xray/{name}"), r.policy_document().unwrap());
            xray::operation::put_resource_policy::PutResourcePolicyOutput::builder()
                .resource_policy(
                    xray::types::ResourcePolicy::builder()
                        .policy_name(name)
                        .policy_revision_id(rev.to_string())
                        .build(),
                )
                .build()
        }),
        mock!(xray::Client::list_resource_policies).then_compute_output(move |_| {
            let m = b.0.lock().unwrap();
            let mut out =
                xray::operation::list_resource_policies::ListResourcePoliciesOutput::builder();
            for (id, (doc, rev)) in m.iter().filter(|(k, _)| k.starts_with("xray/")) {
                out = out.resource_policies(
                    xray::types::ResourcePolicy::builder()
                        .policy_name(id.trim_start_matches("xray/"))
                        .policy_document(doc)
                        .policy_revision_id(rev.to_string())
                        .build(),
                );
            }
            out.build()
        }),
        mock!(xray::Client::delete_resource_policy).then_compute_output(move |r| {
            c.remove(&format!("xray/{}", r.policy_name().unwrap()));
            xray::operation::delete_resource_policy::DeleteResourcePolicyOutput::builder().build()
        }),
    ];

    let (a, b, c) = (s.clone(), s.clone(), s.clone());
    let amp_rules = vec![
        mock!(amp::Client::put_resource_policy).then_compute_output(move |r| {
            let rev = a.put(r.workspace_id().unwrap(), r.policy_document().unwrap());
            amp::operation::put_resource_policy::PutResourcePolicyOutput::builder()
                .policy_status(amp::types::WorkspacePolicyStatusCode::Creating)
                .revision_id(rev.to_string())
                .build()
                .unwrap()
        }),
        mock!(amp::Client::describe_resource_policy).then_compute_response(move |r| {
            match b.get(r.workspace_id().unwrap()) {
            Some((doc, rev)) => MockResponse::Output(
                amp::operation::describe_resource_policy::DescribeResourcePolicyOutput::builder()
                    .policy_document(doc)
                    .policy_status(amp::types::WorkspacePolicyStatusCode::Active)
                    .revision_id(rev.to_string())
                    .build()
                    .unwrap(),
            ),
            None => MockResponse::Http(rest_error(404, "ResourceNotFoundException", "no policy")),
        }
        }),
        mock!(amp::Client::delete_resource_policy).then_compute_response(move |r| {
            if c.remove(r.workspace_id().unwrap()) {
                MockResponse::Output(
                    amp::operation::delete_resource_policy::DeleteResourcePolicyOutput::builder()
                        .build(),
                )
            } else {
                MockResponse::Http(rest_error(404, "ResourceNotFoundException", "no policy"))
            }
        }),
    ];

    // SSM: one policy per parameter here, PolicyId "p-1", the hash is the revision.
    let (a, b, c) = (s.clone(), s.clone(), s.clone());
    let ssm_rules = vec![
        mock!(ssm::Client::put_resource_policy).then_compute_output(move |r| {
            let rev = a.put(r.resource_arn().unwrap(), r.policy().unwrap());
            ssm::operation::put_resource_policy::PutResourcePolicyOutput::builder()
                .policy_id("p-1")
                .policy_hash(format!("h{rev}"))
                .build()
        }),
        mock!(ssm::Client::get_resource_policies).then_compute_output(move |r| {
            let mut out =
                ssm::operation::get_resource_policies::GetResourcePoliciesOutput::builder();
            if let Some((doc, rev)) = b.get(r.resource_arn().unwrap()) {
                out = out.policies(
                    ssm::types::GetResourcePoliciesResponseEntry::builder()
                        .policy_id("p-1")
                        .policy_hash(format!("h{rev}"))
                        .policy(doc)
                        .build(),
                );
            }
            out.build()
        }),
        mock!(ssm::Client::delete_resource_policy).then_compute_output(move |r| {
            c.remove(r.resource_arn().unwrap());
            ssm::operation::delete_resource_policy::DeleteResourcePolicyOutput::builder().build()
        }),
    ];

    let clients = crate::support::empty_clients()
        .with_dynamodb(
            "us-east-1",
            mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &ddb_rules),
        )
        .with_kinesis(
            "us-east-1",
            mock_client!(aws_sdk_kinesis, RuleMode::MatchAny, &kin_rules),
        )
        .with_xray(
            "us-east-1",
            mock_client!(aws_sdk_xray, RuleMode::MatchAny, &xray_rules),
        )
        .with_aps(
            "us-east-1",
            mock_client!(aws_sdk_amp, RuleMode::MatchAny, &amp_rules),
        )
        .with_ssm(
            "us-east-1",
            mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &ssm_rules),
        );
    fakes.rules.extend(
        ddb_rules
            .into_iter()
            .chain(kin_rules)
            .chain(xray_rules)
            .chain(amp_rules)
            .chain(ssm_rules),
    );
    clients
}
