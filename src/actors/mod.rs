//! The actors (DESIGN §1): SocketActor → RouterActor → one ThreadActor per thread, with the
//! shared OpenAiActor and SlackApiActor. Only `startup` knows all of them.

pub mod openai;
pub mod outage;
pub mod reply;
pub mod report;
pub mod router;
pub mod shared;
pub mod slack_api;
pub mod socket;
pub mod thread;
pub mod tickets;

use std::sync::Arc;

use actix::Addr;

use crate::assist::AssistParser;
use crate::config::Settings;
use crate::knowledge::KnowledgeBase;
use crate::openai::meter::LlmMeter;
use crate::prompt::PromptBuilder;
use crate::slack::ChannelId;

/// What every ThreadActor and the router share: read-only settings and data, and the handles of
/// the shared actors.
pub struct Services {
    pub settings: Settings,
    pub slack: crate::slack::SlackApi,
    /// `None` without `OPENAI_API_KEY`: answers come from the knowledge base.
    pub openai: Option<Addr<openai::OpenAiActor>>,
    pub kb: KnowledgeBase,
    /// The past-ticket index.
    pub tickets: Addr<tickets::TicketIndexActor>,
    pub assist: AssistParser,
    /// Triage and follow-up rules from `[triage]` and `[followup]`.
    pub rules: crate::triage::Rules,
    pub identity: crate::slack::client::Identity,
    pub channel: ChannelId,
    pub channel_name: String,
    /// Readiness and the operator's counters.
    pub health: std::sync::Arc<crate::http::Health>,
    /// Builds the LLM prompts (system prompt file, token budget, the model's tokenizer).
    pub prompt: PromptBuilder,
    /// LLM calls, tokens and cost, for `GET /metrics`.
    pub llm_meter: Arc<LlmMeter>,
    /// Outage detection across new tickets.
    pub outage: Addr<outage::OutageActor>,
    /// Off once the workspace refused `chat.startStream`.
    pub streaming: reply::StreamSwitch,
    /// With `REDIS_URL`: what replicas share (budgets, thread state, once-only effects).
    pub coord: Option<crate::coord::Coord>,
}

pub type SharedServices = Arc<Services>;
