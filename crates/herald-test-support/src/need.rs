//! The rule for a test that needs a service or a tool: present, the test runs with it;
//! missing, the test prints why and passes; missing under `HERALD_REQUIRE_SERVICES=1`, the
//! test fails, so CI cannot pass by skipping.
//!
//! [`check_service`] and [`check_tool`] decide from lookups they are handed (pure, and
//! tested that way); [`service`], [`tool`] and the named wrappers read the process
//! environment and act on the decision with [`Need::or_skip`].

use std::{
    ffi::{OsStr, OsString},
    fmt::Display,
    path::{Path, PathBuf},
};

/// The variable that turns every skip into a failure when it is `1` (CI sets it, and so
/// does `scripts/test-env.sh` unless it is already set).
pub const REQUIRE_SERVICES: &str = "HERALD_REQUIRE_SERVICES";

/// Where a developer gets the variables from.
const HINT: &str = "`source scripts/test-env.sh` sets it";

/// What a test does about something it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a Need decides nothing until it is acted on (`or_skip`)"]
pub enum Need<T> {
    /// It is there: the test runs with it.
    Met(T),
    /// It is missing and skipping is allowed: the test prints the reason and passes.
    Skip(String),
    /// It is missing under `HERALD_REQUIRE_SERVICES=1`: the test fails with the reason.
    Fail(String),
}

impl<T> Need<T> {
    /// Something is missing, for the reason `why`: a skip, or a failure when `required`.
    pub fn missing(why: impl Into<String>, required: bool) -> Self {
        let why = why.into();
        if required {
            Need::Fail(why)
        } else {
            Need::Skip(why)
        }
    }

    /// Acts on the decision: the value of [`Need::Met`]; for [`Need::Skip`] prints
    /// `skipping: <why>` to stderr and returns `None`; for [`Need::Fail`] panics.
    pub fn or_skip(self) -> Option<T> {
        match self {
            Need::Met(value) => Some(value),
            Need::Skip(why) => {
                eprintln!("skipping: {why}");
                None
            }
            Need::Fail(why) => panic!("{why}; {REQUIRE_SERVICES}=1 forbids skipping"),
        }
    }
}

/// Whether a value of `HERALD_REQUIRE_SERVICES` forbids skipping: only `1` does.
pub fn is_required(value: Option<&OsStr>) -> bool {
    value == Some(OsStr::new("1"))
}

fn unset(var: &str, what: &str) -> String {
    format!("needs {what}, and {var} is unset ({HINT})")
}

/// The rule for a service such as a database URL in `var`, given `env` to look variables
/// up with: [`Need::Met`] with a non-empty value, else a skip or (required) a failure
/// naming `what` and `var`. Reads nothing but `env`.
pub fn check_service(
    env: impl Fn(&str) -> Option<OsString>,
    var: &str,
    what: &str,
) -> Need<String> {
    let required = is_required(env(REQUIRE_SERVICES).as_deref());
    match env(var) {
        Some(value) if !value.is_empty() => match value.into_string() {
            Ok(value) => Need::Met(value),
            Err(value) => Need::missing(
                format!("needs {what}, and {var} is not UTF-8: {value:?}"),
                required,
            ),
        },
        _ => Need::missing(unset(var, what), required),
    }
}

/// The rule for a tool whose path is in `var`, given `env` to look variables up with and
/// `exists` to test a path: [`Need::Met`] with the path when it is set and exists, else a
/// skip or (required) a failure naming `what`, `var` and, when set, the missing path.
pub fn check_tool(
    env: impl Fn(&str) -> Option<OsString>,
    exists: impl Fn(&Path) -> bool,
    var: &str,
    what: &str,
) -> Need<PathBuf> {
    let required = is_required(env(REQUIRE_SERVICES).as_deref());
    match env(var) {
        Some(value) if !value.is_empty() => {
            let path = PathBuf::from(value);
            if exists(&path) {
                Need::Met(path)
            } else {
                Need::missing(
                    format!(
                        "needs {what}, and {var}={} does not exist ({HINT})",
                        path.display()
                    ),
                    required,
                )
            }
        }
        _ => Need::missing(unset(var, what), required),
    }
}

fn process_env(var: &str) -> Option<OsString> {
    std::env::var_os(var)
}

/// Whether this process runs under `HERALD_REQUIRE_SERVICES=1`.
pub fn required() -> bool {
    is_required(process_env(REQUIRE_SERVICES).as_deref())
}

/// Skips for the reason `why` (something a test needs is unreachable, a script reported a
/// missing library): prints `skipping: <why>`, or under `HERALD_REQUIRE_SERVICES=1` panics.
/// The caller returns afterwards.
pub fn skip(why: impl Display) {
    Need::<()>::missing(why.to_string(), required()).or_skip();
}

/// [`skip`], as the `None` of a lookup: `return skip_or_fail(format!(...));` in a function
/// that returns an `Option`.
pub fn skip_or_fail<T>(why: impl Display) -> Option<T> {
    skip(why);
    None
}

/// The service in the process environment's `var`, by [`check_service`]: `None` after
/// printing why when the test should skip; panics under `HERALD_REQUIRE_SERVICES=1`.
///
/// ```no_run
/// let Some(url) = herald_test_support::service("HERALD_TEST_NATS_URL", "NATS") else {
///     return;
/// };
/// # drop(url);
/// ```
pub fn service(var: &str, what: &str) -> Option<String> {
    check_service(process_env, var, what).or_skip()
}

/// The tool in the process environment's `var`, by [`check_tool`] (the path must exist):
/// `None` after printing why when the test should skip; panics under
/// `HERALD_REQUIRE_SERVICES=1`.
pub fn tool(var: &str, what: &str) -> Option<PathBuf> {
    check_tool(process_env, |p| p.exists(), var, what).or_skip()
}

/// PostgreSQL's URL, from `HERALD_TEST_POSTGRES_URL` ([`service`]).
pub fn postgres_url() -> Option<String> {
    service("HERALD_TEST_POSTGRES_URL", "PostgreSQL")
}

/// Redis's URL, from `HERALD_TEST_REDIS_URL` ([`service`]).
pub fn redis_url() -> Option<String> {
    service("HERALD_TEST_REDIS_URL", "Redis")
}

/// The Python with confluent-kafka, kafka-python and aiokafka that `bash .ci/run install`
/// puts in `.venv`, from `HERALD_TEST_PYTHON` ([`tool`]).
pub fn python() -> Option<PathBuf> {
    tool(
        "HERALD_TEST_PYTHON",
        "a Python with the Kafka clients (`bash .ci/run install` builds .venv)",
    )
}

/// kcat, from `HERALD_TEST_KCAT` ([`tool`]).
pub fn kcat() -> Option<PathBuf> {
    tool("HERALD_TEST_KCAT", "kcat")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// An environment holding exactly `vars`.
    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        move |var| map.get(var).map(OsString::from)
    }

    const URL: &str = "HERALD_TEST_POSTGRES_URL";

    #[test]
    fn a_set_service_is_met_whatever_is_required() {
        for require in [None, Some("0"), Some("1")] {
            let mut vars = vec![(URL, "postgres://h/db")];
            vars.extend(require.map(|r| (REQUIRE_SERVICES, r)));
            assert_eq!(
                check_service(env(&vars), URL, "PostgreSQL"),
                Need::Met("postgres://h/db".to_string()),
                "{require:?}"
            );
        }
    }

    #[test]
    fn an_unset_or_empty_service_skips_unless_required() {
        let why = "needs PostgreSQL, and HERALD_TEST_POSTGRES_URL is unset \
                   (`source scripts/test-env.sh` sets it)";
        for vars in [&[][..], &[(URL, "")], &[(REQUIRE_SERVICES, "0")]] {
            assert_eq!(
                check_service(env(vars), URL, "PostgreSQL"),
                Need::Skip(why.to_string()),
                "{vars:?}"
            );
        }
        assert_eq!(
            check_service(env(&[(REQUIRE_SERVICES, "1")]), URL, "PostgreSQL"),
            Need::Fail(why.to_string())
        );
        assert_eq!(
            check_service(
                env(&[(URL, ""), (REQUIRE_SERVICES, "1")]),
                URL,
                "PostgreSQL"
            ),
            Need::Fail(why.to_string())
        );
    }

    #[test]
    fn only_1_requires() {
        assert!(is_required(Some(OsStr::new("1"))));
        for value in [
            None,
            Some(""),
            Some("0"),
            Some("yes"),
            Some("true"),
            Some(" 1"),
        ] {
            assert!(!is_required(value.map(OsStr::new)), "{value:?}");
        }
    }

    #[test]
    fn a_tool_must_exist() {
        const KCAT: &str = "HERALD_TEST_KCAT";
        let there = |p: &Path| p == Path::new("/usr/bin/kcat");
        assert_eq!(
            check_tool(env(&[(KCAT, "/usr/bin/kcat")]), there, KCAT, "kcat"),
            Need::Met(PathBuf::from("/usr/bin/kcat"))
        );
        let gone = "needs kcat, and HERALD_TEST_KCAT=/opt/kcat does not exist \
                    (`source scripts/test-env.sh` sets it)";
        assert_eq!(
            check_tool(env(&[(KCAT, "/opt/kcat")]), there, KCAT, "kcat"),
            Need::Skip(gone.to_string())
        );
        assert_eq!(
            check_tool(
                env(&[(KCAT, "/opt/kcat"), (REQUIRE_SERVICES, "1")]),
                there,
                KCAT,
                "kcat"
            ),
            Need::Fail(gone.to_string())
        );
        let unset = "needs kcat, and HERALD_TEST_KCAT is unset \
                     (`source scripts/test-env.sh` sets it)";
        assert_eq!(
            check_tool(env(&[]), there, KCAT, "kcat"),
            Need::Skip(unset.to_string())
        );
        assert_eq!(
            check_tool(env(&[(REQUIRE_SERVICES, "1")]), there, KCAT, "kcat"),
            Need::Fail(unset.to_string())
        );
    }

    #[test]
    fn acting_on_a_need() {
        assert_eq!(Need::Met(7).or_skip(), Some(7));
        assert_eq!(Need::<i32>::Skip("no server".into()).or_skip(), None);
        assert_eq!(Need::<()>::missing("x", false), Need::Skip("x".into()));
        assert_eq!(Need::<()>::missing("x", true), Need::Fail("x".into()));
    }

    #[test]
    #[should_panic(expected = "no server; HERALD_REQUIRE_SERVICES=1 forbids skipping")]
    fn a_failure_panics_naming_the_rule() {
        let _ = Need::<()>::Fail("no server".into()).or_skip();
    }
}
