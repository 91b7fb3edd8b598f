//! What the whole function shares across invocations: built once at cold start.

use crate::services::Clients;
use crate::settings::Settings;

pub struct App {
    pub clients: Clients,
    pub settings: Settings,
    /// The function's own region: X-Ray's default.
    pub region: String,
}
