//! Interactive mode: a prompt with line editing and history; pushes, kicks and
//! disconnects are printed as they arrive.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};

use pitaya_client::Events;
use rustyline::error::ReadlineError;
use rustyline::{Config, DefaultEditor};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::command::{self, Command};
use crate::say;
use crate::session::{self, Claims, Session};

const PROMPT: &str = "pitaya> ";

/// Whether the prompt is on screen, waiting for a line.
///
/// rustyline's external printer would redraw the edited line for us, but with it
/// rustyline stops handling pasted input after the first character (rustyline 17), so
/// we print events ourselves and put the prompt back.
type Prompting = Arc<AtomicBool>;

/// Runs the prompt until `quit` or end of input.
///
/// # Errors
///
/// When the terminal cannot be set up.
pub(crate) async fn run(mut session: Session) -> Result<(), ReadlineError> {
    // Without bracketed paste, each pasted line ends with its own Enter and runs as a
    // command; with it, rustyline would take the whole paste as one line.
    let config = Config::builder().bracketed_paste(false).build();
    let mut editor = DefaultEditor::with_config(config)?;
    let history = history_file();
    if let Some(path) = &history {
        // A first run has no history yet.
        let _ = editor.load_history(path);
    }
    let prompting = Prompting::default();

    // rustyline blocks, so it reads on its own thread and waits for each command to
    // finish before it prompts again, keeping results and prompt in order.
    let (lines_tx, mut lines) = mpsc::channel::<String>(1);
    let (next_tx, next) = std_mpsc::channel::<()>();
    let reader = prompting.clone();
    let reader = std::thread::spawn(move || read_lines(editor, history, reader, lines_tx, next));

    let mut printing = follow(&mut session, &prompting);
    'prompt: while let Some(text) = lines.recv().await {
        // A terminal that still brackets a paste hands it over as one multi-line text.
        for line in text.lines() {
            match command::parse(line) {
                Ok(Some(Command::Quit)) => break 'prompt,
                Ok(Some(cmd)) => {
                    let connecting = matches!(cmd, Command::Connect(_));
                    match session.run(cmd).await {
                        Ok(result) => say(&result),
                        Err(error) => say(&error),
                    }
                    if connecting {
                        if let Some(old) = printing.take() {
                            old.abort();
                        }
                        printing = follow(&mut session, &prompting);
                    }
                }
                Ok(None) => {}
                Err(usage) => say(&format!("error usage {usage}")),
            }
        }
        if next_tx.send(()).is_err() {
            break;
        }
    }
    session.close().await;
    // The reader saves the history once it sees we are done; give it the time to.
    drop(next_tx);
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    Ok(())
}

/// Starts printing the events of the session's connection, if it has one.
fn follow(session: &mut Session, prompting: &Prompting) -> Option<JoinHandle<()>> {
    let (events, claims) = session.hand_to_printer()?;
    Some(tokio::spawn(print_events(
        events,
        claims,
        prompting.clone(),
    )))
}

/// Prints each event as it comes, except the push a `wait` takes to print as its result.
async fn print_events(mut events: Events, claims: Arc<Claims>, prompting: Prompting) {
    while let Some(event) = events.recv().await {
        let Some(event) = claims.offer(event) else {
            continue;
        };
        let Some(line) = session::event_line(&event) else {
            continue;
        };
        let mut out = std::io::stdout().lock();
        // Over the prompt: clear its line, print, and draw a fresh prompt below.
        let _ = if prompting.load(Ordering::SeqCst) {
            write!(out, "\r\x1b[K{line}\n{PROMPT}")
        } else {
            writeln!(out, "{line}")
        };
        let _ = out.flush();
    }
    claims.close();
}

fn read_lines(
    mut editor: DefaultEditor,
    history: Option<PathBuf>,
    prompting: Prompting,
    lines: mpsc::Sender<String>,
    next: std_mpsc::Receiver<()>,
) {
    loop {
        prompting.store(true, Ordering::SeqCst);
        let read = editor.readline(PROMPT);
        prompting.store(false, Ordering::SeqCst);
        match read {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if lines.blocking_send(line).is_err() || next.recv().is_err() {
                    break;
                }
            }
            // Ctrl-C clears the line, as shells do; Ctrl-D leaves.
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(path) = history {
        // History is a convenience: a read-only home must not stop the client.
        let _ = editor.save_history(&path);
    }
}

/// Returns `$HOME/.pitaya_cli_history`, or `None` without a home directory.
fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pitaya_cli_history"))
}
