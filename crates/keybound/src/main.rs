//! # keybound
//!
//! The one binary of keybound. This issue ships `inspect`; `serve`, `login`, `present`,
//! `verify` and `demo` arrive with the OP and RP issues. It is the only crate that reads the
//! clock or the terminal, and the only one that uses `anyhow`.

use std::io::Read as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod inspect;

/// Proof-of-possession OpenID Connect: key-bound ID Tokens (OpenID Connect Key Binding),
/// DPoP and Token Bound Authentication.
#[derive(Parser, Debug)]
#[command(name = "keybound", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Decode a JWT (ID Token, DPoP proof, access token, ID-JAG) or a Sec-Token-Binding
    /// value: header, claims, token kind, `cnf` and the key thumbprint. Verifies nothing
    /// except a DPoP proof's signature by its own header key.
    Inspect {
        /// The token, `@FILE` to read it from a file, or `-` for standard input.
        value: String,
    },
}

fn read_input(value: &str) -> anyhow::Result<String> {
    let text = if value == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else if let Some(path) = value.strip_prefix('@') {
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {path}: {e}"))?
    } else {
        value.to_owned()
    };
    Ok(text.trim().to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { value } => {
            let result = read_input(&value).and_then(|input| inspect::run(&input));
            match result {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", one_line(&e.to_string()));
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
