//! `wasmrtc new`: writes a ready handler project from a template shipped in the binary.
//!
//! `wasmrtc new rust-audio demo` writes `demo/` with the handler source, `wasmrtc.toml`,
//! a README, a `test.sh`, the WIT contract and the language's SDK; `wasmrtc new --list`
//! prints the templates.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::project::{NAME_RULE, valid_name};
use super::templates::Template;

/// The command line of `wasmrtc new`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The template, `<language>-<kind>` (e.g. `rust-audio`, `python-video`); `--list` shows them.
    #[arg(required_unless_present = "list")]
    pub template: Option<String>,
    /// The project's name: its folder and its component's name (ASCII letters, digits,
    /// `-` and `_`, starting with a letter, at most 64 characters).
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// The folder to create the project in.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Print every template with what its handler does.
    #[arg(long, conflicts_with_all = ["template", "name"])]
    pub list: bool,
}

/// Why a project could not be written.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// No template has that name.
    #[error("unknown template `{0}` (`wasmrtc new --list` shows them)")]
    UnknownTemplate(String),
    /// The name does not follow [`valid_name`].
    #[error("`{0}` cannot name a project: {NAME_RULE}")]
    BadName(String),
    /// The project folder exists and has files in it.
    #[error("{} already exists and is not empty; choose another name or --dir", .0.display())]
    NotEmpty(PathBuf),
    /// Writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl NewError {
    /// The exit code: 2 for a mistake on the command line, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            NewError::UnknownTemplate(_) | NewError::BadName(_) => 2,
            NewError::NotEmpty(_) | NewError::Write { .. } => 1,
        }
    }
}

/// The `--list` text: one line per template, its name and what it does.
pub fn list() -> String {
    let templates = Template::all();
    let width = templates.iter().map(|t| t.name().len()).max().unwrap_or(0);
    let mut out = String::new();
    for t in templates {
        out.push_str(&format!(
            "{:width$}  {}\n",
            t.name(),
            t.description(),
            width = width
        ));
    }
    out
}

/// Writes the project `name` from `template` into `parent/name/` and returns its folder.
pub fn create(template: &str, name: &str, parent: &Path) -> Result<PathBuf, NewError> {
    let found =
        Template::find(template).ok_or_else(|| NewError::UnknownTemplate(template.into()))?;
    if !valid_name(name) {
        return Err(NewError::BadName(name.into()));
    }
    let dir = parent.join(name);
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| NewError::Write { path, source }
    };
    match std::fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(NewError::NotEmpty(dir));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory || dir.is_file() => {
            return Err(NewError::NotEmpty(dir));
        }
        Err(e) => return Err(write_err(&dir)(e)),
    }
    for file in found.files(name) {
        let path = dir.join(&file.path);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(write_err(folder))?;
        }
        std::fs::write(&path, &file.contents).map_err(write_err(&path))?;
        #[cfg(unix)]
        if file.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(write_err(&path))?;
        }
    }
    Ok(dir)
}

/// Runs `wasmrtc new`.
pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    if args.list {
        print!("{}", list());
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(template), Some(name)) = (args.template, args.name) else {
        // clap requires both unless --list.
        eprintln!("error: wasmrtc new <TEMPLATE> <NAME> (or --list)");
        return Ok(ExitCode::from(2));
    };
    match create(&template, &name, &args.dir) {
        Ok(dir) => {
            let t = Template::find(&template)
                .map(|t| t.description())
                .unwrap_or("");
            let mut out = std::io::stdout().lock();
            writeln!(out, "created {} from {template}: {t}", dir.display())?;
            writeln!(out, "next:")?;
            writeln!(out, "  cd {}", dir.display())?;
            writeln!(
                out,
                "  wasmrtc build     # -> target/wasmrtc/{name}.wasm, and its stream spec"
            )?;
            writeln!(
                out,
                "  ./test.sh         # build, run over a generated input, check"
            )?;
            writeln!(
                out,
                "  wasmrtc dev       # the built-in page on http://127.0.0.1:8000/, rebuilt on every save"
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}
