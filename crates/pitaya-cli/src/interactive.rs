//! Interactive mode: a prompt with line editing and history; pushes, kicks and
//! disconnects are printed as they arrive.

use std::path::PathBuf;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};

use pitaya_client::Events;
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::command::{self, Command};
use crate::session::{self, Session};

const PROMPT: &str = "pitaya> ";

/// Prints lines above the prompt without breaking the line being edited.
type Printer = Arc<Mutex<Box<dyn ExternalPrinter + Send>>>;

/// Runs the prompt until `quit` or end of input.
///
/// # Errors
///
/// When the terminal cannot be set up.
pub(crate) async fn run(mut session: Session) -> Result<(), ReadlineError> {
    let mut editor = DefaultEditor::new()?;
    let history = history_file();
    if let Some(path) = &history {
        // A first run has no history yet.
        let _ = editor.load_history(path);
    }
    let printer: Option<Printer> = editor
        .create_external_printer()
        .ok()
        .map(|p| Arc::new(Mutex::new(Box::new(p) as Box<dyn ExternalPrinter + Send>)));

    // rustyline blocks, so it reads on its own thread and waits for each command to
    // finish before it prompts again, keeping results and prompt in order.
    let (lines_tx, mut lines) = mpsc::channel::<String>(1);
    let (next_tx, next) = std_mpsc::channel::<()>();
    std::thread::spawn(move || read_lines(editor, history, lines_tx, next));

    let mut printing = follow(&mut session, printer.clone());
    while let Some(line) = lines.recv().await {
        match command::parse(&line) {
            Ok(Some(Command::Quit)) => break,
            Ok(Some(cmd)) => {
                let connecting = matches!(cmd, Command::Connect(_));
                match session.run(cmd).await {
                    Ok(result) => println!("{result}"),
                    Err(error) => println!("{error}"),
                }
                if connecting {
                    if let Some(old) = printing.take() {
                        old.abort();
                    }
                    printing = follow(&mut session, printer.clone());
                }
            }
            Ok(None) => {}
            Err(usage) => println!("error usage {usage}"),
        }
        if next_tx.send(()).is_err() {
            break;
        }
    }
    session.close().await;
    Ok(())
}

/// Starts printing the events of the session's connection, if it has one.
fn follow(session: &mut Session, printer: Option<Printer>) -> Option<JoinHandle<()>> {
    let events = session.take_events()?;
    Some(tokio::spawn(print_events(events, printer)))
}

async fn print_events(mut events: Events, printer: Option<Printer>) {
    while let Some(event) = events.recv().await {
        let Some(line) = session::event_line(&event) else {
            continue;
        };
        let printed = printer
            .as_ref()
            .and_then(|p| p.lock().ok()?.print(line.clone()).ok());
        if printed.is_none() {
            println!("{line}");
        }
    }
}

fn read_lines(
    mut editor: DefaultEditor,
    history: Option<PathBuf>,
    lines: mpsc::Sender<String>,
    next: std_mpsc::Receiver<()>,
) {
    loop {
        match editor.readline(PROMPT) {
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
