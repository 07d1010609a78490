//! The config: defaults, validation, durations, URLs and credentials.

use std::path::Path;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::seconds::parse_duration;
use super::*;

const MINIMAL: &str = "[api]\norganization_id = 1\nworkspace_id = 2\n";

#[test]
fn example_config_parses() {
    let text = include_str!("../../config/orgmirror.example.toml");
    let c = Config::parse(text).expect("example config parses");
    assert_eq!(c.api.per_page, 100);
    assert_eq!(c.api.auth_scheme, AuthScheme::Auto);
    assert_eq!(c.api.max_requests_per_second, 1.0);
    assert_eq!(c.schedule.cron, "0 */30 * * * *");
    // Every value it shows is the default (the README says it lists every key with its
    // default), but the ids, which have none.
    let defaults =
        Config::parse("[api]\norganization_id = 4242\nworkspace_id = 900\n").expect("parses");
    assert_eq!(format!("{c:?}"), format!("{defaults:?}"));
}

#[test]
fn defaults_fill_everything_but_the_ids() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(c.api.base_url, "https://focus.toggl.com/api");
    assert!(c.sync.include_rates);
    assert_eq!(c.sync.max_delete_fraction, 0.5);
    assert_eq!(c.log.format, LogFormat::Text);
}

#[test]
fn unknown_key_is_named() {
    let err = Config::parse(&format!("{MINIMAL}per_pages = 3\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("per_pages"), "{err}");
    let err = Config::parse(&format!("{MINIMAL}[sync]\nmax_delete = 0.2\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_delete"), "{err}");
}

#[test]
fn invalid_fields_are_named() {
    let cases = [
        ("[api]\norganization_id = 1\nworkspace_id = 2\nbase_url = \"http://focus.example.com/api\"\n", "api.base_url"),
        ("[api]\norganization_id = 0\nworkspace_id = 2\n", "api.organization_id"),
        ("[api]\norganization_id = 1\n", "api.workspace_id"),
        ("[api]\norganization_id = 1\nworkspace_id = 2\nper_page = 0\n", "api.per_page"),
        (&format!("{MINIMAL}[sync]\nmax_delete_fraction = 1.5\n"), "sync.max_delete_fraction"),
        (&format!("{MINIMAL}[sync]\ncustom_fields_workspace_id = 0\n"), "sync.custom_fields_workspace_id"),
        (&format!("{MINIMAL}[schedule]\ncron = \"*/5 * * * *\"\n"), "schedule.cron"),
        (&format!("{MINIMAL}[log]\nlevel = \"=[\"\n"), "log.level"),
        (&format!("{MINIMAL}[database]\nbusy_timeout = \"600h\"\n"), "database.busy_timeout"),
        // February 31st: a valid expression that never fires.
        (&format!("{MINIMAL}[schedule]\ncron = \"0 0 0 31 2 *\"\n"), "schedule.cron"),
        (&format!("{MINIMAL}[schedule]\nquota_share = 1\n"), "schedule.quota_share"),
        (&format!("{MINIMAL}hourly_quota = 0\n"), "api.hourly_quota"),
        (&format!("{MINIMAL}[metrics]\nlisten = \"localhost\"\n"), "metrics.listen"),
    ];
    for (text, field) in cases {
        let err = Config::parse(text).unwrap_err().to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
}

#[test]
fn plain_http_only_for_loopback() {
    assert!(validate_base_url("http://127.0.0.1:8080/api").is_ok());
    assert!(validate_base_url("http://localhost/api").is_ok());
    assert!(validate_base_url("http://[::1]:9/api").is_ok());
    assert!(validate_base_url("http://10.0.0.1/api").is_err());
    assert!(validate_base_url("ftp://example.com").is_err());
    assert!(validate_base_url("https://user:pw@example.com").is_err());
}

#[test]
fn durations_too_long_for_any_timer_are_refused_where_they_are_written() {
    for (key, value) in [
        ("request_timeout", "1e20"),
        ("max_quota_wait", "\"99999999999999999999h\""),
        ("initial_backoff", "31622401"),
    ] {
        let err = Config::parse(&format!("{MINIMAL}{key} = {value}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(key) && err.contains("at most 366 days"),
            "{err}"
        );
    }
    let c = Config::parse(&format!("{MINIMAL}max_quota_wait = \"366d\"\n"));
    assert!(c.is_err(), "no day unit");
    assert!(Config::parse(&format!("{MINIMAL}max_quota_wait = \"8784h\"\n")).is_ok());
    assert_eq!(Seconds(f64::MAX).duration(), Duration::MAX);
    let err = Config::parse(&format!("{MINIMAL}request_timeout = true\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("request_timeout") && err.contains("\"30s\""),
        "{err}"
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms").unwrap(), 0.5);
    assert_eq!(parse_duration("5m").unwrap(), 300.0);
    assert_eq!(parse_duration("2").unwrap(), 2.0);
    assert!(parse_duration("5 weeks").is_err());
}

#[test]
fn credentials_precedence_and_headers() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let c = Credentials::from_lookup(
        env(&[("TOGGL_API_TOKEN", "tok"), ("TOGGL_EMAIL", "a@b")]),
        None,
    )
    .unwrap();
    assert_eq!(
        c.authorization(AuthScheme::Basic).expose_secret(),
        "Basic dG9rOmFwaV90b2tlbg=="
    );
    assert_eq!(
        c.authorization(AuthScheme::Bearer).expose_secret(),
        "Bearer tok"
    );
    // auto: an older token as Basic, a Focus key as Bearer, a login as Basic.
    assert_eq!(
        c.authorization(AuthScheme::Auto).expose_secret(),
        "Basic dG9rOmFwaV90b2tlbg=="
    );
    let key = Credentials::from_lookup(env(&[("TOGGL_API_TOKEN", "toggl_sk_abc")]), None).unwrap();
    assert_eq!(
        key.authorization(AuthScheme::Auto).expose_secret(),
        "Bearer toggl_sk_abc"
    );
    assert_eq!(key.sent_as(AuthScheme::Basic), SentAs::BasicToken);
    let c = Credentials::from_lookup(
        env(&[("TOGGL_EMAIL", "a@b.c"), ("TOGGL_PASSWORD", "pw")]),
        None,
    )
    .unwrap();
    assert_eq!(
        c.authorization(AuthScheme::Basic).expose_secret(),
        "Basic YUBiLmM6cHc="
    );
    assert_eq!(
        c.authorization(AuthScheme::Auto).expose_secret(),
        "Basic YUBiLmM6cHc="
    );
    assert!(matches!(
        Credentials::from_lookup(env(&[("TOGGL_EMAIL", "a@b.c")]), None),
        Err(ConfigError::BadCredentials(_))
    ));
    assert!(matches!(
        Credentials::from_lookup(env(&[]), None),
        Err(ConfigError::NoCredentials)
    ));
    assert!(!format!("{c:?}").contains("pw"));
}

#[test]
fn credentials_from_systemd_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("toggl_api_token"), "secret-token\n").unwrap();
    let d = dir.path().to_string_lossy().to_string();
    let c = Credentials::from_lookup(
        move |k| (k == "CREDENTIALS_DIRECTORY").then(|| d.clone()),
        None,
    )
    .unwrap();
    assert_eq!(
        c.authorization(AuthScheme::Bearer).expose_secret(),
        "Bearer secret-token"
    );
}

#[test]
fn a_token_file_is_read_at_each_call_after_the_environments_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    let systemd = dir.path().join("creds");
    std::fs::create_dir(&systemd).unwrap();
    std::fs::write(systemd.join("toggl_api_token"), "from-systemd").unwrap();
    let systemd = systemd.to_string_lossy().to_string();
    let env = |pairs: Vec<(&'static str, String)>| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    };
    let bearer = |c: Result<Credentials, ConfigError>| {
        c.map(|c| {
            c.authorization(AuthScheme::Bearer)
                .expose_secret()
                .to_string()
        })
    };
    std::fs::write(&file, "toggl_sk_first\n").unwrap();
    let login = vec![
        ("TOGGL_EMAIL", "a@b.c".to_string()),
        ("TOGGL_PASSWORD", "pw".to_string()),
        ("CREDENTIALS_DIRECTORY", systemd.clone()),
    ];
    // The file wins over a login and over the systemd credential…
    assert_eq!(
        bearer(Credentials::from_lookup(env(login.clone()), Some(&file))).unwrap(),
        "Bearer toggl_sk_first"
    );
    // …and is read again at every call: a replaced key is the one used.
    std::fs::write(&file, "toggl_sk_second").unwrap();
    assert_eq!(
        bearer(Credentials::from_lookup(env(login), Some(&file))).unwrap(),
        "Bearer toggl_sk_second"
    );
    // TOGGL_API_TOKEN wins over it.
    let token = vec![("TOGGL_API_TOKEN", "from-env".to_string())];
    assert_eq!(
        bearer(Credentials::from_lookup(env(token), Some(&file))).unwrap(),
        "Bearer from-env"
    );
    // A missing, empty or many-worded file is an error naming the file, never its text.
    let missing = dir.path().join("absent");
    let cases: [(&Path, &str, &str); 3] = [
        (&missing, "", "cannot read credential"),
        (&file, " \n", "it is empty"),
        (&file, "toggl_sk_secret more", "more than one word"),
    ];
    for (path, content, says) in cases {
        if path == file.as_path() {
            std::fs::write(path, content).unwrap();
        }
        let e = Credentials::from_lookup(env(vec![]), Some(path)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(says) && text.contains(&path.display().to_string()),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }
}

#[test]
fn a_relative_token_file_is_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("orgmirror.toml");
    std::fs::write(&config, format!("{MINIMAL}token_file = \"keys/toggl\"\n")).unwrap();
    let loaded = Config::load(&config).unwrap();
    let dir = std::path::absolute(dir.path()).unwrap();
    assert_eq!(loaded.api.token_file, Some(dir.join("keys/toggl")));
    let empty = format!("{MINIMAL}token_file = \"\"\n");
    assert!(Config::parse(&empty)
        .unwrap_err()
        .to_string()
        .contains("api.token_file"));
}

#[test]
fn every_duration_unit_and_what_is_not_a_duration() {
    let seconds = [
        ("500ms", 0.5),
        (" 30s ", 30.0),
        ("1.5h", 5400.0),
        ("5min", 300.0),
        ("5 m", 300.0),
        ("2", 2.0),
        ("0.25", 0.25),
    ];
    for (text, want) in seconds {
        assert_eq!(parse_duration(text), Ok(want), "{text:?}");
    }
    let refused = [
        ("", "`` is not a duration"),
        ("ms", "`ms` is not a duration"),
        ("-5s", "`-5s` is not a duration"),
        ("1.2.3s", "`1.2.3s` is not a duration"),
        (
            "5 weeks",
            "unknown duration unit `weeks` in `5 weeks` (use ms, s, m or h)",
        ),
        ("366d", "unknown duration unit `d`"),
    ];
    for (text, words) in refused {
        let err = parse_duration(text).unwrap_err().to_string();
        assert!(err.contains(words), "{text:?}: {err}");
    }
}

#[test]
fn a_base_url_is_https_or_loopback_http_with_nothing_secret_or_extra() {
    let accepted = [
        "https://focus.toggl.com/api",
        "http://127.0.0.1:8080/api",
        "http://127.8.9.1/api",
        "http://LocalHost/api",
        "http://[::1]:9/api",
    ];
    for url in accepted {
        assert!(
            validate_base_url(url).is_ok(),
            "{url}: {:?}",
            validate_base_url(url)
        );
    }
    let remote = "uses plain http to a remote host";
    let refused = [
        ("http://10.0.0.1/api", remote),
        ("http://localhost.example.com/api", remote),
        ("http://[::2]/api", remote),
        ("ftp://example.com", "has scheme `ftp`; use https"),
        ("focus.toggl.com/api", "is not a URL"),
        (
            "https://user:pw@example.com",
            "credentials must not be written in the URL",
        ),
        (
            "https://token@example.com",
            "credentials must not be written in the URL",
        ),
        (
            "https://example.com/api?x=1",
            "must not have a query or fragment",
        ),
        (
            "https://example.com/api#top",
            "must not have a query or fragment",
        ),
    ];
    for (url, words) in refused {
        let err = validate_base_url(url).unwrap_err().to_string();
        assert!(err.contains(words), "{url}: {err}");
    }
}

#[test]
fn the_audit_log_is_on_and_reaches_back_90_days_unless_told() {
    let c = Config::parse(MINIMAL).unwrap();
    assert!(c.sync.audit_log);
    assert_eq!(c.sync.audit_log_backfill, Days(90));
    for (text, days) in [("\"30d\"", 30), ("\"2w\"", 14), ("0", 0), ("\"366d\"", 366)] {
        let c = Config::parse(&format!(
            "{MINIMAL}[sync]\naudit_log = false\naudit_log_backfill = {text}\n"
        ))
        .unwrap();
        assert!(!c.sync.audit_log);
        assert_eq!(c.sync.audit_log_backfill, Days(days), "{text}");
    }
    for text in ["\"367d\"", "\"90 days\"", "-1", "\"1h\""] {
        let err = Config::parse(&format!("{MINIMAL}[sync]\naudit_log_backfill = {text}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("audit_log_backfill"), "{text}: {err}");
    }
}
