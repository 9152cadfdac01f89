//! `itbot sandbox`: the real bot against the simulated workspace, driven from stdin and printed
//! to stdout as the threads unfold.
//!
//! Input lines: a plain line posts a new ticket as the current person; `> text` replies in the
//! current thread; `/react -1` puts that reaction on the bot's last message in the current thread;
//! `/human` presses its "Get a human" button, `/good` and `/bad` its feedback buttons; `@itbot`
//! mentions the bot; `/as NAME` switches person; `/thread N` switches thread; `/quit` ends. Before each line the
//! driver waits for the bot to finish answering (with a deadline), so a piped script reads like a
//! real conversation. At the end of input it waits for replies still in flight, then exits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::broadcast::error::RecvError;

use itbot_fakes::fake_openai::{FakeOpenAi, FakeOpenAiOptions};
use itbot_fakes::workspace::{Posted, Workspace, WorkspaceOptions};

use crate::config::Config;
use crate::startup::{Bot, StartOptions};

/// Command-line switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub demo: bool,
    pub fake_llm: bool,
}

/// The built-in script of `--demo`.
pub const DEMO_SCRIPT: &str = "\
/as alice
My VPN won't connect from home, the AWS VPN Client just spins on connecting
> still not working, same thing after a restart
> nope, still the same
> yes please, get me a human
/as bob
I need access to Snowflake for the finance dashboards
/as carol
please add me to the design group in Google
/as erin
got a new phone and Okta Verify isn't sending me push notifications
/good
> that fixed it, thanks!
/as frank
zoom can't hear anyone in meetings
/react -1
/as judy
who approves software purchases?
thanks all, the new laptops are great!
/as grace
the VPN is down for me too, AWS VPN Client says connection failed
/as henry
can't connect to the VPN from home either, is it down?
/as ivan
@itbot report
";

/// The person tickets come from until `/as` says otherwise.
const FIRST_PERSON: &str = "alice";

/// What the driver knows about one thread, from what it sees posted.
#[derive(Debug, Default)]
struct ThreadView {
    number: usize,
    requester: String,
    /// Messages from the requester the bot has not answered yet.
    awaiting: usize,
    /// The bot's latest message here (for `/react`).
    last_bot_ts: Option<String>,
    /// A person other than the requester wrote here (the bot goes quiet).
    human_joined: bool,
    escalated: bool,
}

struct Driver {
    ws: Workspace,
    bot_user: String,
    it_channel: String,
    threads: HashMap<String, ThreadView>,
    order: Vec<String>,
    current_thread: Option<String>,
    person: String,
    /// The longest the driver waits for the bot before moving on.
    patience: Duration,
    /// The bot's triage, so a post that is not a ticket and gets no reply is not waited for.
    rules: crate::triage::Rules,
    triage: crate::config::TriageSettings,
}

/// Runs the sandbox until the input ends or `/quit`.
pub async fn run(config: Config, options: Options) -> Result<(), String> {
    let ws = Workspace::start(WorkspaceOptions::default())
        .await
        .map_err(|e| format!("cannot start the simulated workspace: {e}"))?;
    let fake_llm = if options.fake_llm {
        Some(
            FakeOpenAi::start(FakeOpenAiOptions::default())
                .await
                .map_err(|e| format!("cannot start the fake LLM: {e}"))?,
        )
    } else {
        None
    };
    let config = sandbox_config(config, &ws, fake_llm.as_ref());
    let patience =
        Duration::from_secs(config.settings.assist.wait_secs + 3 * config.settings.openai.timeout_secs + 5);
    let llm = if fake_llm.is_some() {
        "a local fake LLM"
    } else if config.env.openai_api_key.is_some() {
        "OpenAI"
    } else {
        "the offline knowledge base"
    };

    let rules = crate::triage::Rules::new(&config.settings.triage, &config.settings.followup)
        .map_err(|e| format!("the triage rules do not compile: {e}"))?;
    let triage = config.settings.triage.clone();
    let options_http = StartOptions { http_addr: SocketAddr::from(([127, 0, 0, 1], 0)) };
    let mut posted = ws.subscribe();
    let bot = Bot::start(config, options_http).await.map_err(|e| e.to_string())?;
    wait_until(Duration::from_secs(10), || bot.health.is_ready())
        .await
        .map_err(|_| "the bot did not connect to the simulated workspace".to_string())?;

    println!("itbot sandbox: simulated workspace on {}, answers from {llm}.", ws.api_url());
    println!(
        "Type a problem to open a ticket, `> text` to reply, `/react -1`, `/human`, `/good`, `/bad`, `/as NAME`, `/quit`."
    );
    println!();

    let mut driver = Driver {
        bot_user: ws.bot_user_id().to_string(),
        it_channel: ws.it_channel().to_string(),
        ws: ws.clone(),
        threads: HashMap::new(),
        order: Vec::new(),
        current_thread: None,
        person: FIRST_PERSON.to_string(),
        patience,
        rules,
        triage,
    };

    let mut lines: Box<dyn Iterator<Item = String>> = Box::new(std::iter::empty());
    let mut stdin = (!options.demo).then(|| BufReader::new(tokio::io::stdin()).lines());
    if options.demo {
        lines = Box::new(DEMO_SCRIPT.lines().map(str::to_string).collect::<Vec<_>>().into_iter());
    }
    loop {
        driver.settle(&mut posted).await;
        let line = match stdin.as_mut() {
            Some(stdin) => match stdin.next_line().await {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => return Err(format!("reading stdin: {e}")),
            },
            None => match lines.next() {
                Some(l) => l,
                None => break,
            },
        };
        if options.demo && !line.trim().is_empty() {
            println!("{}", dim(&format!("» {line}")));
        }
        if !driver.input(line.trim()) {
            break;
        }
    }
    driver.settle(&mut posted).await;
    bot.stop().await;
    ws.stop().await;
    if let Some(f) = fake_llm {
        f.stop().await;
    }
    Ok(())
}

/// The configuration pointed at the simulated workspace: its URL and tokens, its #it, and
/// its Assist; the rest as configured.
fn sandbox_config(mut config: Config, ws: &Workspace, fake_llm: Option<&FakeOpenAi>) -> Config {
    config.env.slack_api_url = ws.api_url();
    config.env.slack_bot_token = Some(ws.bot_token().to_string().into());
    config.env.slack_app_token = Some(ws.app_token().to_string().into());
    config.env.it_channel_id = Some(ws.it_channel().into());
    config.env.it_channel_name = "it".into();
    config.settings.assist.bot_ids = vec![ws.assist_bot_id().to_string()];
    // The simulated workspace has no rate limits to leave room under: reports read it briskly.
    config.settings.history.backfill_pace_ms = config.settings.history.backfill_pace_ms.min(20);
    if let Some(f) = fake_llm {
        config.env.openai_base_url = f.base_url();
        config.env.openai_api_key = Some("sk-sandbox-fake".to_string().into());
    }
    config
}

async fn wait_until(deadline: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let end = tokio::time::Instant::now() + deadline;
    while !ready() {
        if tokio::time::Instant::now() > end {
            return Err(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

impl Driver {
    /// Handles one input line; false to stop.
    fn input(&mut self, line: &str) -> bool {
        if line.is_empty() || line.starts_with('#') {
            return true;
        }
        if let Some(cmd) = line.strip_prefix('/') {
            let (name, arg) = cmd.split_once(' ').map(|(a, b)| (a, b.trim())).unwrap_or((cmd, ""));
            match name {
                "quit" | "exit" => return false,
                "as" if !arg.is_empty() => {
                    self.person = arg.to_lowercase();
                    // A new person starts from their own latest ticket, if any.
                    if let Some(t) =
                        self.order.iter().rev().find(|t| self.threads[*t].requester == self.person)
                    {
                        self.current_thread = Some(t.clone());
                    }
                }
                "react" => {
                    let reaction = if arg.is_empty() { "-1" } else { arg.trim_matches(':') };
                    let asks_for_a_person = matches!(reaction, "-1" | "thumbsdown");
                    let Some((_, ts)) = self.answer_to_act_on(asks_for_a_person) else { return true };
                    println!(
                        "{}",
                        dim(&format!("  {} reacted :{reaction}: to itbot's message", self.person))
                    );
                    let user = self.ws.user_id(&self.person);
                    self.ws.react(&user, &self.it_channel, &ts, reaction);
                }
                "human" | "button" => {
                    let Some((thread, ts)) = self.answer_to_act_on(true) else { return true };
                    println!("{}", dim(&format!("  {} pressed \"Get a human\"", self.person)));
                    let user = self.ws.user_id(&self.person);
                    self.ws.click_button(
                        &user,
                        &self.it_channel,
                        &ts,
                        crate::compose::GET_HUMAN_ACTION,
                        &thread,
                    );
                }
                "good" | "bad" => {
                    let up = name == "good";
                    let Some((_, ts)) = self.answer_to_act_on(!up) else { return true };
                    let button = if up { "👍" } else { "👎" };
                    println!("{}", dim(&format!("  {} pressed {button} under itbot's answer", self.person)));
                    let user = self.ws.user_id(&self.person);
                    if !self.ws.click_feedback(&user, &self.it_channel, &ts, up) {
                        println!("{}", dim("(that message has no feedback buttons)"));
                    }
                }
                "thread" => match arg.parse::<usize>().ok().and_then(|n| self.order.get(n.wrapping_sub(1))) {
                    Some(t) => self.current_thread = Some(t.clone()),
                    None => println!("{}", dim("(no such thread)")),
                },
                _ => println!(
                    "{}",
                    dim("(commands: /as NAME, /react -1, /human, /good, /bad, /thread N, /quit)")
                ),
            }
            return true;
        }
        let user = self.ws.user_id(&self.person);
        // `@itbot` is typed as the mention Slack would send.
        let line = &line.replace("@itbot", &format!("<@{}>", self.bot_user));
        match line.strip_prefix('>') {
            Some(reply) => {
                let Some(thread) = self.current_thread.clone() else {
                    println!("{}", dim("(no thread yet: post a problem first)"));
                    return true;
                };
                self.ws.post(&user, &self.it_channel, reply.trim(), Some(&thread));
            }
            None => {
                self.ws.post(&user, &self.it_channel, line, None);
            }
        }
        true
    }

    /// The current thread and the bot's latest message in it, for `/react` and `/human`; when
    /// the requester asks for a person there, the bot's answer is awaited. `None` (and a note)
    /// when there is nothing to act on yet.
    fn answer_to_act_on(&mut self, asks_for_a_person: bool) -> Option<(String, String)> {
        let Some(thread) = self.current_thread.clone() else {
            println!("{}", dim("(no thread yet: post a problem first)"));
            return None;
        };
        let person = self.person.clone();
        let view = self.threads.get_mut(&thread)?;
        let Some(ts) = view.last_bot_ts.clone() else {
            println!("{}", dim("(the bot has not answered in this thread yet)"));
            return None;
        };
        if asks_for_a_person && view.requester == person && !view.escalated {
            view.awaiting += 1;
        }
        Some((thread, ts))
    }

    /// Prints what was posted until nothing is awaited (or patience runs out).
    async fn settle(&mut self, posted: &mut tokio::sync::broadcast::Receiver<Posted>) {
        let end = tokio::time::Instant::now() + self.patience;
        // Give the workspace a moment to deliver what the last line caused.
        let quiet = Duration::from_millis(150);
        loop {
            let waiting = self.threads.values().any(|t| t.awaiting > 0);
            let wait =
                if waiting { end.saturating_duration_since(tokio::time::Instant::now()) } else { quiet };
            if wait.is_zero() {
                println!("{}", dim("(the bot did not answer in time)"));
                self.threads.values_mut().for_each(|t| t.awaiting = 0);
                return;
            }
            match tokio::time::timeout(wait, posted.recv()).await {
                Ok(Ok(p)) => self.show(p),
                Ok(Err(RecvError::Lagged(n))) => println!("{}", dim(&format!("({n} messages not shown)"))),
                Ok(Err(RecvError::Closed)) => return,
                Err(_) if !waiting => return,
                Err(_) => {}
            }
        }
    }

    fn name(&self, id: Option<&str>) -> String {
        id.and_then(|id| self.ws.user_name(id)).unwrap_or_else(|| "someone".into())
    }

    fn show(&mut self, p: Posted) {
        if let Some(to) = &p.ephemeral_to {
            let text = terminal_text(&p.text, &|id| self.ws.user_name(id));
            println!("  {} {}", dim(&format!("(only {} sees this) itbot:", self.name(Some(to)))), text);
            return;
        }
        if p.channel != self.it_channel {
            return;
        }
        let is_bot = p.user.as_deref() == Some(self.bot_user.as_str());
        let author =
            if is_bot { "itbot".to_string() } else { self.name(p.user.as_deref().or(p.bot_id.as_deref())) };
        let text = terminal_text(&p.text, &|id| self.ws.user_name(id));
        let root = p.thread_ts.clone().filter(|t| *t != p.ts);
        match root {
            None => {
                let number = self.order.len() + 1;
                self.order.push(p.ts.clone());
                // A post that is not a ticket, in a mode that leaves it unanswered: nothing to
                // wait for (whatever the bot does post is still shown).
                // (`@itbot report` and other mentions are commands, answered before triage.)
                let mentions_bot = p.text.contains(&format!("<@{}>", self.bot_user));
                let unanswered = !mentions_bot
                    && self.rules.classify(&p.text).category == crate::triage::Category::NotTicket
                    && crate::compose::not_ticket_reply(&self.triage, &p.text).is_none();
                self.threads.insert(
                    p.ts.clone(),
                    ThreadView {
                        number,
                        requester: author.clone(),
                        awaiting: usize::from(p.bot_id.is_none() && !unanswered),
                        ..ThreadView::default()
                    },
                );
                self.current_thread = Some(p.ts.clone());
                println!();
                println!(
                    "{} {}: {}",
                    bold(&format!("#it [thread {number}]")),
                    bold(&author),
                    indent(&text, 4)
                );
                if unanswered && p.bot_id.is_none() {
                    println!("{}", dim("  (not a ticket: itbot stays out of it)"));
                }
            }
            Some(thread) => {
                let Some(view) = self.threads.get_mut(&thread) else { return };
                if is_bot {
                    view.awaiting = 0;
                    view.last_bot_ts = Some(p.ts.clone());
                    let escalated = p
                        .metadata
                        .as_ref()
                        .and_then(|m| m.pointer("/event_payload/escalated"))
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false);
                    view.escalated |= escalated;
                } else if p.bot_id.is_none() {
                    if author == view.requester {
                        let mentioned = p.text.contains(&format!("<@{}>", self.bot_user));
                        if (!view.human_joined && !view.escalated) || mentioned {
                            view.awaiting += 1;
                        }
                    } else {
                        view.human_joined = true;
                    }
                }
                println!(
                    "  {} {}: {}",
                    dim(&format!("└ [thread {}]", view.number)),
                    bold(&author),
                    indent(&text, 6)
                );
            }
        }
    }
}

/// mrkdwn as a terminal shows it: entities decoded, `<@U…>` as `@name`, links as `text (url)`.
pub fn terminal_text(text: &str, name_of: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let inner = &after[..close];
        if let Some(id) = inner.strip_prefix('@') {
            let id = id.split('|').next().unwrap_or(id);
            out.push('@');
            out.push_str(&name_of(id).unwrap_or_else(|| id.to_string()));
        } else if let Some(special) = inner.strip_prefix('!') {
            out.push('@');
            out.push_str(special.split('|').next_back().unwrap_or(special));
        } else {
            match inner.split_once('|') {
                Some((url, label)) => out.push_str(&format!("{label} ({url})")),
                None => out.push_str(inner),
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .enumerate()
        .map(|(i, l)| if i == 0 || l.is_empty() { l.to_string() } else { format!("{pad}{l}") })
        .collect::<Vec<_>>()
        .join("\n")
}

fn use_color() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn bold(s: &str) -> String {
    if use_color() {
        format!("\x1b[1m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn dim(s: &str) -> String {
    if use_color() {
        format!("\x1b[2m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_shows_names_links_and_plain_characters() {
        let names = |id: &str| (id == "U1").then(|| "dana".to_string());
        assert_eq!(
            terminal_text("<@U1> see <https://x.io|the guide> &lt;company&gt; &amp; <!here>", &names),
            "@dana see the guide (https://x.io) <company> & @here"
        );
    }
}
