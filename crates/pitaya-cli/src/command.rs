//! The command language shared by the interactive and scripted modes.

use std::time::Duration;

use serde_json::Value;

/// One parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// `connect <url>`; a URL without a scheme means `tcp://`.
    Connect(String),
    /// `request <route> [json]`; the body defaults to `{}`.
    Request { route: String, body: Value },
    /// `notify <route> [json]`; the body defaults to `{}`.
    Notify { route: String, body: Value },
    /// `wait <route> [seconds]`: the next push on the route.
    Wait {
        route: String,
        timeout: Option<Duration>,
    },
    /// `disconnect`.
    Disconnect,
    /// `help`.
    Help,
    /// `quit` or `exit`.
    Quit,
}

/// The help text printed by `help`.
pub(crate) const HELP: &str = "\
commands:
  connect <url>             tcp://host:port, tls://host:port, ws://host:port/path,
                            wss://host:port/path; host:port alone means tcp
  request <route> [json]    send a request and print the response (body defaults to {})
  notify <route> [json]     send a notify
  wait <route> [seconds]    wait for a push on the route and print it
  disconnect                close the connection
  help                      this text
  quit                      leave";

/// Returns the command on `line`, `Ok(None)` for a blank line or a `#` comment.
///
/// # Errors
///
/// A message naming what is wrong: unknown command, missing argument, bad JSON.
pub(crate) fn parse(line: &str) -> Result<Option<Command>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (word, rest) = split_word(line);
    let cmd = match word {
        "connect" => Command::Connect(with_scheme(one_arg(rest, "connect <url>")?)),
        "request" => {
            let (route, body) = route_and_body(rest, "request <route> [json]")?;
            Command::Request { route, body }
        }
        "notify" => {
            let (route, body) = route_and_body(rest, "notify <route> [json]")?;
            Command::Notify { route, body }
        }
        "wait" => wait(rest)?,
        "disconnect" => no_args(rest, Command::Disconnect)?,
        "help" => no_args(rest, Command::Help)?,
        "quit" | "exit" => no_args(rest, Command::Quit)?,
        other => return Err(format!("unknown command {other:?} (try help)")),
    };
    Ok(Some(cmd))
}

fn split_word(s: &str) -> (&str, &str) {
    match s.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (s, ""),
    }
}

fn one_arg<'a>(rest: &'a str, usage: &str) -> Result<&'a str, String> {
    match split_word(rest) {
        ("", _) => Err(format!("usage: {usage}")),
        (arg, "") => Ok(arg),
        _ => Err(format!("usage: {usage}")),
    }
}

fn no_args(rest: &str, cmd: Command) -> Result<Command, String> {
    if rest.is_empty() {
        Ok(cmd)
    } else {
        Err(format!("unexpected arguments {rest:?}"))
    }
}

fn with_scheme(url: &str) -> String {
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("tcp://{url}")
    }
}

fn route_and_body(rest: &str, usage: &str) -> Result<(String, Value), String> {
    let (route, json) = split_word(rest);
    if route.is_empty() {
        return Err(format!("usage: {usage}"));
    }
    let body = if json.is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(json).map_err(|e| format!("invalid json: {e}"))?
    };
    Ok((route.to_owned(), body))
}

fn wait(rest: &str) -> Result<Command, String> {
    let usage = "usage: wait <route> [seconds]";
    let (route, secs) = split_word(rest);
    if route.is_empty() {
        return Err(usage.to_owned());
    }
    let timeout = match secs {
        "" => None,
        s => Some(parse_seconds(s).ok_or_else(|| format!("{usage}: bad seconds {s:?}"))?),
    };
    Ok(Command::Wait {
        route: route.to_owned(),
        timeout,
    })
}

/// Returns a non-negative number of seconds (fractions allowed) as a duration.
pub(crate) fn parse_seconds(s: &str) -> Option<Duration> {
    s.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ok(line: &str) -> Command {
        parse(line).unwrap().unwrap()
    }

    #[test]
    fn blank_lines_and_comments_are_skipped() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("   ").unwrap(), None);
        assert_eq!(parse("  # request a.b").unwrap(), None);
    }

    #[test]
    fn request_takes_the_rest_of_the_line_as_json() {
        assert_eq!(
            ok(r#"request room.room.join {"name": "a b"}"#),
            Command::Request {
                route: "room.room.join".into(),
                body: json!({ "name": "a b" }),
            }
        );
        assert_eq!(
            ok("notify room.room.message"),
            Command::Notify {
                route: "room.room.message".into(),
                body: json!({}),
            }
        );
    }

    #[test]
    fn connect_defaults_to_tcp() {
        assert_eq!(
            ok("connect 127.0.0.1:3250"),
            Command::Connect("tcp://127.0.0.1:3250".into())
        );
        assert_eq!(
            ok("connect ws://h:1/x"),
            Command::Connect("ws://h:1/x".into())
        );
    }

    #[test]
    fn wait_takes_an_optional_timeout() {
        assert_eq!(
            ok("wait onMessage 1.5"),
            Command::Wait {
                route: "onMessage".into(),
                timeout: Some(Duration::from_millis(1500)),
            }
        );
        assert_eq!(
            ok("wait onMessage"),
            Command::Wait {
                route: "onMessage".into(),
                timeout: None,
            }
        );
    }

    #[test]
    fn mistakes_are_explained() {
        for (line, hint) in [
            ("fly away", "unknown command"),
            ("request", "usage"),
            ("request a.b {bad", "invalid json"),
            ("connect", "usage"),
            ("connect a b", "usage"),
            ("wait x -1", "bad seconds"),
            ("quit now", "unexpected"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains(hint), "{line}: {err}");
        }
    }
}
