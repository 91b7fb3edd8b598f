//! What the whole function shares across invocations: built once at cold start.

use crate::ledger::{DynamoLedger, Ledger, MemoryLedger};
use crate::services::Clients;
use crate::settings::Settings;

pub struct App {
    pub clients: Clients,
    pub settings: Settings,
    /// The function's own region: X-Ray's default, and where the ledger lives.
    pub region: String,
    ledger: Ledger,
}

impl App {
    /// The ledger is the DynamoDB table `LEDGER_TABLE` names; without one (tests whose
    /// services are mocked) it is kept in memory. `main` refuses to start without it.
    pub fn new(clients: Clients, settings: Settings, region: impl Into<String>) -> App {
        let region = region.into();
        let ledger = match &settings.ledger_table {
            Some(table) => Ledger::Dynamo(DynamoLedger::new(clients.dynamodb(&region), table)),
            None => Ledger::Memory(MemoryLedger::default()),
        };
        App {
            clients,
            settings,
            region,
            ledger,
        }
    }

    /// Who owns what: the single source of truth for ownership.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Invokes this function asynchronously with `event`, on the version running now
    /// (Lambda retries a failed asynchronous invocation, then keeps it in the dead-letter
    /// queue). `why` says what must continue, for the error.
    pub async fn invoke_self(&self, event: &serde_json::Value, why: &str) -> Result<(), String> {
        let Some(name) = &self.settings.function_name else {
            return Err(format!(
                "{why} must continue in a fresh invocation, but the function's name is \
                 unknown (AWS_LAMBDA_FUNCTION_NAME)"
            ));
        };
        self.clients
            .lambda(&self.region)
            .invoke()
            .function_name(name)
            .set_qualifier(self.settings.function_version.clone())
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "{why} could not continue (lambda:InvokeFunction): {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                )
            })
    }
}
