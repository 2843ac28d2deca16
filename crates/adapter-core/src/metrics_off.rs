//! Without the `prometheus` feature metrics cost nothing: this type has no state and its methods
//! do nothing, so the engine records unconditionally.

use switchboard_wire::MessageType;

#[derive(Clone, Debug)]
pub(crate) struct Metrics;

impl Metrics {
    pub(crate) fn sent(&self, _: MessageType) {}
    pub(crate) fn received(&self, _: MessageType) {}
    pub(crate) fn request(&self, _: &str, _: f64) {}
    pub(crate) fn nodes(&self, _: &str, _: usize) {}
    pub(crate) fn clients(&self, _: &str, _: usize) {}
    pub(crate) fn dropped(&self, _: &str) {}
}
