//! Calendar arithmetic for reports: when the weekly report is due, and which local day a ticket
//! belongs to. Pure functions over unix seconds and a time zone name ("UTC" or an IANA name),
//! looked up in the tz database bundled into the binary (no `/usr/share/zoneinfo` needed).

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The time zone named `name`: "UTC" or an IANA name such as "Europe/Berlin". `None` when the
/// bundled database does not know it (jiff's placeholder `Etc/Unknown` is refused too: it is
/// what a failed lookup elsewhere would produce, not a zone anyone means).
pub fn time_zone(name: &str) -> Option<TimeZone> {
    if name.trim().is_empty() || name.eq_ignore_ascii_case("Etc/Unknown") {
        return None;
    }
    TimeZone::get(name).ok()
}

/// `mon`..`sun` as a weekday.
fn weekday(day: &str) -> Option<Weekday> {
    Some(match day {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

/// The first weekly slot strictly after `after_unix`: weekday `day` ("mon".."sun") at
/// `hour`:00 in time zone `tz`, DST-correct. A slot that falls in a skipped hour (spring
/// forward) moves forward by the gap; in a repeated hour (fall back) the first occurrence is the
/// slot, so the report goes out once. `None` if `tz` is unknown, `day` is "" or not a day, or
/// `hour` is over 23.
pub fn next_weekly(after_unix: i64, day: &str, hour: u32, tz: &str) -> Option<i64> {
    let target = weekday(day)?;
    let hour = i8::try_from(hour).ok().filter(|h| (0..=23).contains(h))?;
    let tz = time_zone(tz)?;
    let start = Timestamp::from_second(after_unix).ok()?.to_zoned_datetime(tz.clone()).date();
    // Today's slot may be past already; a week and a day of candidates always holds the next.
    (0..=8i64).find_map(|offset| {
        let date = start.checked_add(jiff::Span::new().days(offset)).ok()?;
        if date.weekday() != target {
            return None;
        }
        // `compatible`: a gap resolves to the later instant, a fold to the earlier one.
        let slot = tz.to_ambiguous_timestamp(date.at(hour, 0, 0, 0)).compatible().ok()?.as_second();
        (slot > after_unix).then_some(slot)
    })
}

/// The calendar date (YYYY-MM-DD) of a unix time in `tz`, for "tickets by day". `None` if `tz`
/// is unknown or the time is out of range.
pub fn local_date(unix: i64, tz: &str) -> Option<String> {
    Some(date_in(unix, &time_zone(tz)?)?.to_string())
}

/// The local date and time (YYYY-MM-DD HH:MM) of a unix time in `tz`, for a report's period.
pub fn local_datetime(unix: i64, tz: &str) -> Option<String> {
    let zoned = Timestamp::from_second(unix).ok()?.to_zoned_datetime(time_zone(tz)?);
    Some(zoned.strftime("%Y-%m-%d %H:%M").to_string())
}

/// Every local date from the one holding `since_unix` to the one holding `until_unix`, in order.
pub fn local_dates(since_unix: i64, until_unix: i64, tz: &str) -> Option<Vec<String>> {
    let tz = time_zone(tz)?;
    let (first, last) = (date_in(since_unix, &tz)?, date_in(until_unix.max(since_unix), &tz)?);
    let mut dates = Vec::new();
    let mut d = first;
    while d <= last {
        dates.push(d.to_string());
        d = d.tomorrow().ok()?;
    }
    Some(dates)
}

fn date_in(unix: i64, tz: &TimeZone) -> Option<Date> {
    Some(Timestamp::from_second(unix).ok()?.to_zoned_datetime(tz.clone()).date())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of an RFC 3339 instant, for readable test data.
    fn at(instant: &str) -> i64 {
        instant.parse::<Timestamp>().expect("a valid instant").as_second()
    }

    #[test]
    fn an_ordinary_week_gives_the_next_monday_at_the_hour() {
        let next = next_weekly(at("2024-05-15T12:00:00Z"), "mon", 9, "UTC");
        assert_eq!(next, Some(at("2024-05-20T09:00:00Z")));
    }

    #[test]
    fn on_the_day_itself_the_slot_is_today_before_the_hour_and_next_week_from_the_hour_on() {
        let monday_nine = at("2024-05-20T09:00:00Z");
        assert_eq!(next_weekly(monday_nine - 1, "mon", 9, "UTC"), Some(monday_nine));
        assert_eq!(next_weekly(monday_nine, "mon", 9, "UTC"), Some(monday_nine + 7 * 86_400));
        assert_eq!(next_weekly(monday_nine + 1, "mon", 9, "UTC"), Some(monday_nine + 7 * 86_400));
    }

    #[test]
    fn the_hour_is_local_time_in_the_zone_across_a_dst_change() {
        // Berlin is UTC+1 until 31 March 2024, UTC+2 after.
        assert_eq!(
            next_weekly(at("2024-03-20T00:00:00Z"), "mon", 9, "Europe/Berlin"),
            Some(at("2024-03-25T08:00:00Z"))
        );
        assert_eq!(
            next_weekly(at("2024-03-29T00:00:00Z"), "mon", 9, "Europe/Berlin"),
            Some(at("2024-04-01T07:00:00Z"))
        );
    }

    #[test]
    fn a_slot_in_the_skipped_spring_forward_hour_moves_forward() {
        // 31 March 2024, Berlin: 02:00 CET jumps to 03:00 CEST; 02:00 does not exist.
        let next = next_weekly(at("2024-03-30T12:00:00Z"), "sun", 2, "Europe/Berlin");
        assert_eq!(next, Some(at("2024-03-31T01:00:00Z")), "03:00 CEST");
    }

    #[test]
    fn a_slot_in_the_repeated_fall_back_hour_is_the_first_occurrence_only() {
        // 27 October 2024, Berlin: 02:00-03:00 happens twice (CEST, then CET).
        let first = next_weekly(at("2024-10-26T12:00:00Z"), "sun", 2, "Europe/Berlin");
        assert_eq!(first, Some(at("2024-10-27T00:00:00Z")), "02:00 CEST");
        // Once it has passed, the repeated 02:00 CET is not a second slot.
        let next = next_weekly(at("2024-10-27T00:00:00Z"), "sun", 2, "Europe/Berlin");
        assert_eq!(next, Some(at("2024-11-03T01:00:00Z")), "02:00 CET a week later");
    }

    #[test]
    fn new_york_spring_forward_keeps_nine_o_clock_local() {
        // 10 March 2024: New York goes from UTC-5 to UTC-4.
        let next = next_weekly(at("2024-03-09T12:00:00Z"), "sun", 9, "America/New_York");
        assert_eq!(next, Some(at("2024-03-10T13:00:00Z")));
    }

    #[test]
    fn an_unknown_zone_an_empty_day_or_a_bad_hour_gives_no_slot() {
        let now = at("2024-05-15T12:00:00Z");
        assert_eq!(next_weekly(now, "mon", 9, "Mars/Olympus"), None);
        assert_eq!(next_weekly(now, "", 9, "UTC"), None);
        assert_eq!(next_weekly(now, "funday", 9, "UTC"), None);
        assert_eq!(next_weekly(now, "mon", 24, "UTC"), None);
        assert!(time_zone("Etc/Unknown").is_none() && time_zone("").is_none());
    }

    #[test]
    fn the_local_date_follows_the_zone() {
        // 04:30 UTC on 9 March is still the evening of 8 March in New York.
        let t = at("2024-03-09T04:30:00Z");
        assert_eq!(local_date(t, "UTC").as_deref(), Some("2024-03-09"));
        assert_eq!(local_date(t, "America/New_York").as_deref(), Some("2024-03-08"));
        assert_eq!(local_date(t, "Mars/Olympus"), None);
        assert_eq!(local_datetime(t, "America/New_York").as_deref(), Some("2024-03-08 23:30"));
    }

    #[test]
    fn local_dates_list_every_day_of_a_period_inclusive() {
        let days = local_dates(at("2024-03-08T05:00:00Z"), at("2024-03-11T04:00:00Z"), "America/New_York");
        assert_eq!(days.unwrap(), ["2024-03-08", "2024-03-09", "2024-03-10", "2024-03-11"]);
    }
}
