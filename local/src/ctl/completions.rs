//! `trialctl completions <shell>`: a completion script for the whole command line, generated
//! from its clap definition, so it never drifts from the commands.
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> Result<(), String> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "trialctl", &mut std::io::stdout());
    Ok(())
}
