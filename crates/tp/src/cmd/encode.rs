//! `tp encode`: the JSON of a message (as `tp decode --json` prints it) to bytes.

use std::io::Write;
use std::path::PathBuf;

use super::CmdError;
use super::decode::read_input;
use super::frames;
use super::util;

/// One-line description (`tp encode -h`).
pub const ABOUT: &str = "Encode a message from JSON";

/// What `tp encode --help` says.
pub const LONG_ABOUT: &str = "Encode a message from JSON.

Reads one JSON object as `tp decode --json` prints it: `\"message\"` names the message, the
other keys are its fields (var data as text, or {\"hex\": \"...\"}; groups as arrays).
`\"headerless\": true` writes no message header (SlotHeader, ShmRegionSuperblock, or a
message body). A `tp listen --json` line is accepted too: its `\"body\"` is encoded.";

/// Examples, shown after the flags.
pub const EXAMPLES: &str = "Examples:
  tp encode fd.json -o fd.bin
  tp decode --json captured.bin | tp encode - -o same.bin
  echo '{\"message\":\"QosProducer\",\"stream_id\":10000,\"producer_id\":1,\"epoch\":3,\"current_seq\":42,\"watermark\":null}' | tp encode - -o qos.bin";

/// Flags of `tp encode`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON file to read, or `-` for standard input.
    #[arg(value_name = "JSON-FILE|-")]
    input: PathBuf,
    /// Where to write the bytes (`-`: standard output).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Write hex text instead of bytes.
    #[arg(long)]
    hex: bool,
}

/// Runs `tp encode`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let raw = read_input(&args.input)?;
    let name = if args.input.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        args.input.display().to_string()
    };
    let value: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| format!("{name}: not JSON: {e}"))?;
    let bytes = frames::encode_json(value).map_err(|e| format!("{name}: {e}"))?;
    let data = if args.hex {
        let mut s = util::to_hex(&bytes);
        s.push('\n');
        s.into_bytes()
    } else {
        bytes
    };
    if args.output.as_os_str() == "-" {
        std::io::stdout().write_all(&data)?;
    } else {
        std::fs::write(&args.output, &data)
            .map_err(|e| format!("{}: {e}", args.output.display()))?;
    }
    Ok(())
}
