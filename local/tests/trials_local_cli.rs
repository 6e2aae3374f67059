//! `trials-local`'s command line, as a newcomer meets it: help, and errors that name the
//! argument (exit status 2) before anything starts.
use std::process::Output;

fn trials_local(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_trials-local"))
        .args(args)
        .output()
        .expect("run trials-local")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_describes_every_option() {
    for flag in ["--help", "-h"] {
        let out = trials_local(&[flag]);
        assert!(out.status.success());
        let help = text(&out.stdout);
        assert!(help.contains("Usage: trials-local"), "{help}");
        for option in ["--addr", "--data", "--dynamodb-addr", "JOBS_INTERVAL"] {
            assert!(help.contains(option), "{option}: {help}");
        }
    }
    let version = trials_local(&["--version"]);
    assert!(version.status.success());
    assert!(text(&version.stdout).starts_with("trials-local "));
}

#[test]
fn a_wrong_command_line_names_the_argument_and_starts_nothing() {
    for (args, says) in [
        (
            &["--addr", "nowhere"][..],
            "invalid value 'nowhere' for '--addr <HOST:PORT>'",
        ),
        (
            &["--dynamodb-addr", "127.0.0.1:99999"],
            "for '--dynamodb-addr <HOST:PORT>'",
        ),
        (&["--addr"], "a value is required for '--addr <HOST:PORT>'"),
        (&["--bogus"], "unexpected argument '--bogus' found"),
        (&["serve"], "unexpected argument 'serve' found"),
    ] {
        let out = trials_local(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            err.contains("Usage: trials-local") || err.contains("try '--help'"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
