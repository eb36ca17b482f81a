//! The command line: `serve`, `migrate`, and user administration.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use mfagate::core::Context;

use crate::settings::Settings;
use crate::startup::{self, Application};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "mfagate",
    version,
    about = "Multi-factor authentication server for REST APIs"
)]
pub struct Cli {
    /// TOML settings file; MFAGATE_* environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (creates and migrates the database on first start).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the Ed25519 keys of EdDSA access tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a key that signs from now on; older keys stay published until their tokens expire.
    /// Running servers pick it up within MFAGATE_CLEANUP_INTERVAL seconds.
    Rotate,
    /// Print the published keys (the JWKS).
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input, or prompted for.
    Create {
        username: String,
        #[arg(long)]
        email: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Remove a user's TOTP device and recovery codes and end their sessions (for a user who
    /// lost both). Audited.
    ResetMfa { username: String },
    /// Make a user an administrator.
    SetAdmin { username: String },
    /// Withdraw a user's administrator rights.
    UnsetAdmin { username: String },
    /// Invite a user by e-mail: they choose their password with the mailed key.
    Invite {
        #[arg(long)]
        email: String,
        /// Defaults to the e-mail address.
        #[arg(long)]
        username: Option<String>,
    },
}

fn now_context() -> Context {
    Context {
        now: mfagate::gate::unix_now(),
        ip: None,
        user_agent: Default::default(),
    }
}

fn read_password(username: &str) -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {username}: "))
            .map_err(|e| e.to_string())?;
        let second = rpassword::prompt_password("Repeat it: ").map_err(|e| e.to_string())?;
        if first != second {
            return Err("the two passwords differ; nothing was created".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("no password on standard input; pipe one in, e.g. `echo 'pw' | mfagate user create ...`".into());
    }
    Ok(password)
}

/// Runs the command; `Err` carries the message to print before exiting with status 1.
pub async fn run(cli: Cli) -> Result<(), String> {
    let settings = Settings::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    match cli.command {
        Command::Serve => telemetry::init(settings.log_format),
        // A command's answer is its printed line; its audit events are stored in the database
        // and logged only when asked for (RUST_LOG=info), so the terminal shows the answer alone.
        _ => telemetry::init_with_default(settings.log_format, "warn"),
    }
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            startup::open_store(&settings)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "migrations applied to {}",
                mfagate_store::redact_url(&settings.database_url)
            );
            Ok(())
        }
        Command::User(command) => user(settings, command).await,
        Command::Keys(command) => {
            let gatekeeper = startup::gatekeeper(&settings)
                .await
                .map_err(|e| e.to_string())?;
            let now = mfagate::gate::unix_now();
            match command {
                KeysCommand::Rotate => {
                    let kid = gatekeeper.rotate_signing_key(now).await.map_err(describe)?;
                    println!("new signing key {kid}; the previous key stays published until its tokens expire");
                }
                KeysCommand::List => {
                    if settings.config.jwt_algorithm == mfagate::core::JwtAlgorithm::Hs256 {
                        eprintln!(
                            "no keys to publish: access tokens are signed with HS256, a shared secret \
                             that only mfagate holds; set MFAGATE_JWT_ALGORITHM=EdDSA to sign with \
                             Ed25519 keys that other services can verify through the JWKS"
                        );
                    }
                    println!("{}", gatekeeper.jwks(now));
                }
            }
            gatekeeper.flush_audit().await;
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let mode = settings.config.mode.as_str();
    let database = mfagate_store::redact_url(&settings.database_url);
    let app = Application::build(settings)
        .await
        .map_err(|e| e.to_string())?;
    let address = app.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%address, mode, %database, "mfagate is listening; try: curl http://{address}/healthz");
    app.run_until(startup::shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

async fn user(settings: Settings, command: UserCommand) -> Result<(), String> {
    let gatekeeper = startup::gatekeeper(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let ctx = now_context();
    match command {
        UserCommand::Create {
            username,
            email,
            admin,
        } => {
            let password = read_password(&username)?;
            let user = gatekeeper
                .create_user(&username, &email, &password, admin, &ctx)
                .await
                .map_err(describe)?;
            println!(
                "created user {} (id {}){}",
                user.username,
                user.id,
                if admin { " as administrator" } else { "" }
            );
        }
        UserCommand::ResetMfa { username } => {
            let user = gatekeeper
                .admin_reset_mfa(&username, &ctx)
                .await
                .map_err(describe)?;
            println!("removed the second factors of {} and ended their sessions; they log in with their password next", user.username);
        }
        UserCommand::Invite { email, username } => {
            let user = gatekeeper
                .invite(&email, username.as_deref(), &ctx)
                .await
                .map_err(describe)?;
            println!(
                "invited {} <{}>; the invitation key was e-mailed",
                user.username, user.email
            );
        }
        UserCommand::SetAdmin { username } => {
            set_admin(&gatekeeper, &username, true, &ctx).await?;
        }
        UserCommand::UnsetAdmin { username } => {
            set_admin(&gatekeeper, &username, false, &ctx).await?;
        }
    }
    // Command-line actions are audited too: wait until the events are stored.
    gatekeeper.flush_audit().await;
    Ok(())
}

/// Grants or withdraws administrator rights, and says whether anything changed.
async fn set_admin(
    gatekeeper: &mfagate::core::Gatekeeper,
    username: &str,
    is_admin: bool,
    ctx: &Context,
) -> Result<(), String> {
    let (user, changed) = gatekeeper
        .admin_set_admin(username, is_admin, ctx)
        .await
        .map_err(describe)?;
    let name = user.username;
    match (is_admin, changed) {
        (true, true) => println!("{name} is now an administrator"),
        (true, false) => println!("{name} is already an administrator; nothing changed"),
        (false, true) => println!("{name} is no longer an administrator"),
        (false, false) => println!("{name} is not an administrator; nothing changed"),
    }
    Ok(())
}

fn describe(error: mfagate::core::Error) -> String {
    match error {
        mfagate::core::Error::Validation(fields) => fields
            .iter()
            .map(|(field, problem)| format!("{field} {problem}"))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
