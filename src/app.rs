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
}
