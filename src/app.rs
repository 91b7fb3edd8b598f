//! What the whole function shares across invocations: built once at cold start.

use crate::ledger::Ledger;
use crate::services::Clients;
use crate::settings::Settings;

pub struct App {
    pub clients: Clients,
    pub settings: Settings,
    /// The function's own region: X-Ray's default, and where the ledger lives.
    pub region: String,
}

impl App {
    /// The desired-state ledger, when one is configured (`LEDGER_TABLE`).
    pub fn ledger(&self) -> Option<Ledger> {
        let table = self.settings.ledger_table.as_ref()?;
        Some(Ledger::new(self.clients.dynamodb(&self.region), table))
    }
}
