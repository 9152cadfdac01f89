//! The team report over a fixture history (`tests/data/report_history.json`): ten threads as
//! Slack returns them, with the bot's state metadata, Assist cards, reactions, a fix by IT
//! staff, an access request the assignee closed, an escalation, an unanswered request, an
//! outage, a human takeover, a ticket from before the period and two posts that are not
//! tickets. Every figure is asserted exactly.

use std::time::Duration;

use itbot::config::Settings;
use itbot::knowledge::KnowledgeBase;
use itbot::report::{Report, TicketSummary, Votes};
use itbot::slack::events::HistoryMessage;
use itbot::slack::{ChannelId, UserId};
use itbot::tickets::Ending;
use itbot::triage::{Category, Rules};

/// 2024-03-08 00:00 in New York (EST, UTC-5); the period crosses the switch to EDT on 10 March.
const SINCE: i64 = 1_709_874_000;
const UNTIL: i64 = SINCE + 7 * 86_400;
const TZ: &str = "America/New_York";

fn fixture() -> Vec<Vec<HistoryMessage>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/report_history.json");
    let text = std::fs::read_to_string(path).expect("the fixture is readable");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("the fixture is JSON");
    let threads: Vec<Vec<serde_json::Value>> =
        serde_json::from_value(doc["threads"].clone()).expect("threads are lists of messages");
    let channel = ChannelId::from("C0IT");
    threads
        .iter()
        .map(|t| {
            t.iter().map(|m| HistoryMessage::parse(m, &channel).expect("every message has a ts")).collect()
        })
        .collect()
}

fn summaries() -> Vec<TicketSummary> {
    let s = Settings::shipped();
    let rules = Rules::new(&s.triage, &s.followup).expect("the shipped rules compile");
    let staff = vec!["UIT1".to_string()];
    fixture()
        .iter()
        .filter_map(|thread| TicketSummary::from_thread(thread, &UserId::from("UBOT"), &rules, &staff))
        .collect()
}

fn report() -> Report {
    Report::build(&summaries(), SINCE, UNTIL, TZ, &KnowledgeBase::shipped())
}

#[test]
fn each_thread_reads_as_the_ticket_it_was() {
    let tickets = summaries();

    assert_eq!(tickets.len(), 8, "the bot's own post and a join are not tickets");
    let vpn = &tickets[0];
    assert_eq!(vpn.category, Category::Technical);
    assert_eq!(vpn.first_response, Some(Duration::from_millis(5_500)));
    assert_eq!(vpn.ending, Ending::BotResolved);
    assert_eq!(vpn.feedback, Votes { up: 2, down: 0 }, "one button vote and one reaction");
    assert_eq!(vpn.article.as_deref(), Some("aws-client-vpn"));
    assert!(!vpn.human_took_over, "the assignee never wrote");

    let okta = &tickets[1];
    assert_eq!(okta.ending, Ending::Escalated);
    assert!(okta.escalated);
    assert_eq!(okta.llm.calls, 2);

    let staff_fix = &tickets[2];
    assert_eq!((staff_fix.ending, staff_fix.human_took_over), (Ending::PersonResolved, true));

    let access = &tickets[3];
    assert_eq!(access.category, Category::Access);
    assert_eq!(
        (access.ending, access.human_took_over),
        (Ending::PersonResolved, true),
        "the assignee closed it"
    );

    let unanswered = &tickets[4];
    assert_eq!((unanswered.category, unanswered.first_response), (Category::Change, None));

    let outage = &tickets[5];
    assert!(outage.in_outage);
    assert_eq!(outage.outages_started, 1);
    assert_eq!(outage.outage_threads, 3, "the threads the notice lists");
    assert_eq!(outage.feedback, Votes { up: 0, down: 1 });

    let zoom = &tickets[6];
    assert!(zoom.human_took_over, "the state says so");
    assert_eq!(zoom.ending, Ending::Unknown, "a colleague's `same here` fixes nothing");
    assert_eq!(zoom.feedback, Votes { up: 1, down: 0 }, "the bot's own 👍 is not feedback");
}

#[test]
fn the_report_counts_tickets_by_category_and_outcome() {
    let r = report();

    assert_eq!(r.tickets, 7, "the ticket from before the period is left out");
    assert_eq!((r.by_category.technical, r.by_category.access, r.by_category.change), (5, 1, 1));
    assert_eq!(r.answered_by_bot, 6);
    assert_eq!(r.resolved_by_bot, 1);
    assert_eq!(r.resolved_by_person, 2);
    assert_eq!(r.escalated, 1);
    assert_eq!(r.human_takeovers, 3);
    // The outage's notice lists three affected threads (one of them carries the state mark).
    assert_eq!((r.outages.detected, r.outages.tickets), (1, 3));
}

#[test]
fn first_response_median_and_p90_are_nearest_rank_over_answered_tickets() {
    // Answered after 5.5, 12, 30, 8, 60 and 20 seconds: sorted, rank 3 and rank 6.
    let r = report();

    assert_eq!(r.first_response.median_secs, Some(12.0));
    assert_eq!(r.first_response.p90_secs, Some(60.0));
}

#[test]
fn tickets_fall_on_their_local_day_in_the_report_time_zone() {
    let r = report();

    let days: Vec<(&str, &str, u64)> =
        r.by_day.iter().map(|d| (d.date.as_str(), d.weekday.as_str(), d.tickets)).collect();
    assert_eq!(
        days,
        [
            // 23:30 on the 8th in New York is already the 9th in UTC.
            ("2024-03-08", "Fri", 2),
            ("2024-03-09", "Sat", 0),
            ("2024-03-10", "Sun", 1),
            ("2024-03-11", "Mon", 1),
            ("2024-03-12", "Tue", 1),
            ("2024-03-13", "Wed", 1),
            ("2024-03-14", "Thu", 1),
            // The period ends at 01:00 EDT on the 15th (midnight EST plus seven days).
            ("2024-03-15", "Fri", 0),
        ]
    );
    assert_eq!(r.by_day[3].by_category.access, 1);
    assert_eq!(r.by_day[4].by_category.change, 1);
    assert_eq!((r.period.since.as_str(), r.period.until.as_str()), ("2024-03-08 00:00", "2024-03-15 01:00"));
    let utc = Report::build(&summaries(), SINCE, UNTIL, "UTC", &KnowledgeBase::shipped());
    assert_eq!(
        (utc.by_day[0].tickets, utc.by_day[1].tickets),
        (1, 1),
        "in UTC the late ticket is on the 9th"
    );
}

#[test]
fn feedback_adds_button_votes_and_reactions_by_category() {
    let r = report();

    assert_eq!((r.feedback.up, r.feedback.down), (3, 2));
    assert_eq!(r.feedback.by_category.technical, Votes { up: 3, down: 2 });
    assert_eq!(r.feedback.by_category.access, Votes::default());
    assert_eq!(r.feedback.by_category.change, Votes::default());
}

#[test]
fn top_problems_rank_articles_by_tickets_with_titles_and_count_the_rest_as_other() {
    let kb = KnowledgeBase::shipped();
    let title =
        |slug: &str| kb.articles().iter().find(|a| a.slug == slug).expect("shipped article").title.clone();

    let r = report();

    let top: Vec<(&str, &str, u64)> =
        r.top_problems.iter().map(|p| (p.article.as_str(), p.title.as_str(), p.tickets)).collect();
    assert_eq!(
        top,
        [
            ("aws-client-vpn", title("aws-client-vpn").as_str(), 2),
            ("okta-sso", title("okta-sso").as_str(), 1),
            ("okta-verify-mfa", title("okta-verify-mfa").as_str(), 1),
            ("zoom", title("zoom").as_str(), 1),
        ]
    );
    assert_eq!(r.other_problems, 2, "the access request and the unanswered one");
}

#[test]
fn llm_calls_tokens_and_cost_are_summed_over_the_bots_answers() {
    let r = report();

    assert_eq!(r.llm.calls, 6);
    assert_eq!(r.llm.prompt_tokens, 6_500);
    assert_eq!(r.llm.cached_tokens, 1_500);
    assert_eq!(r.llm.completion_tokens, 1_010);
    assert_eq!(r.llm.cost_usd, 0.00158, "the ticket from before the period cost $0.50 and is left out");
}

#[test]
fn no_rendering_shows_message_text_or_user_ids() {
    let r = report();
    let outputs = [r.to_table(), r.to_mrkdwn(), serde_json::to_string(&r).expect("serialisable")];

    for thread in fixture() {
        for m in thread {
            let fragment: String = m.message.text.expose().chars().take(20).collect();
            let user = m.message.user.as_ref().map(|u| u.as_str()).unwrap_or_default();
            for out in &outputs {
                assert!(!out.contains(&fragment), "message text `{fragment}` appears in:\n{out}");
                assert!(!out.contains(user), "user id {user} appears in:\n{out}");
            }
        }
    }
    for id in ["UDANA", "UIT1", "IT-101", "IT-104"] {
        assert!(outputs.iter().all(|o| !o.contains(id)), "{id} appears");
    }
}

#[test]
fn the_table_and_the_slack_message_show_the_figures() {
    let r = report();

    let table = r.to_table();
    let mrkdwn = r.to_mrkdwn();

    println!("{table}\n{mrkdwn}");
    assert!(table.contains("Team report 2024-03-08 00:00 to 2024-03-15 01:00 (America/New_York)"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("Tickets") && l.ends_with(" 7")), "{table}");
    assert!(table.contains("median 12 s, p90 1 min"), "{table}");
    assert!(
        table.contains("6 answers, 6,500 prompt tokens (1,500 cached), 1,010 completion tokens, $0.001580"),
        "{table}"
    );
    assert!(table.contains("  2024-03-08 Fri      2          2       0       0"), "{table}");
    assert!(mrkdwn.contains("*Tickets:* 7 (5 technical, 1 access, 1 change)"), "{mrkdwn}");
    assert!(mrkdwn.contains("*Escalated:* 1"), "{mrkdwn}");
    assert!(mrkdwn.contains(":+1: 3 · :-1: 2"), "{mrkdwn}");
    assert!(mrkdwn.contains("`Fri 03-08` 2"), "{mrkdwn}");
    assert!(mrkdwn.chars().count() < 3_000);
}

#[test]
fn the_json_has_the_documented_shape() {
    let r = report();

    let j = serde_json::to_value(&r).expect("serialisable");

    for key in [
        "period",
        "tickets",
        "by_category",
        "by_day",
        "answered_by_bot",
        "first_response",
        "resolved_by_bot",
        "resolved_by_person",
        "escalated",
        "human_takeovers",
        "feedback",
        "top_problems",
        "other_problems",
        "llm",
        "outages",
    ] {
        assert!(j.get(key).is_some(), "no `{key}` in {j:#}");
    }
    assert_eq!(j["period"]["timezone"], TZ);
    assert_eq!(j["by_category"]["technical"], 5);
    assert_eq!(j["by_day"][0]["by_category"]["technical"], 2);
    assert_eq!(j["first_response"]["p90_secs"], 60.0);
    assert_eq!(j["feedback"]["by_category"]["technical"]["down"], 2);
    assert_eq!(j["top_problems"][0]["article"], "aws-client-vpn");
    assert_eq!(j["llm"]["cost_usd"], 0.00158);
    assert_eq!(j["outages"]["detected"], 1);
}
