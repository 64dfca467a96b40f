//! `tp decode`: any message of the six schemas (or a header slot, a superblock, a message
//! body) from bytes to text or JSON.

use std::io::{Read, Write};
use std::path::PathBuf;

use super::CmdError;
use super::frames::{self, Headerless};
use super::util;

/// One-line description (`tp decode -h`).
pub const ABOUT: &str = "Decode a message from bytes";

/// What `tp decode --help` says.
pub const LONG_ABOUT: &str = "Decode a message from bytes.

Reads one SBE message framed by its 8-byte message header (schema id, then template id
select the decoder), or with --headerless the 256-byte header slot, the 64-byte region
superblock, or the body of a named message. With --json the output is the JSON `tp encode`
turns back into the same bytes.";

/// Examples, shown after the flags.
pub const EXAMPLES: &str = "Examples:
  tp decode captured.bin
  tp decode --json qos.bin | tp encode - -o qos-copy.bin
  tp decode --headerless slot slot.bin
  echo '0c00...' | tp decode --hex -";

/// Flags of `tp decode`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// File to read, or `-` for standard input.
    #[arg(value_name = "FILE|-")]
    input: PathBuf,
    /// Print one JSON object (the input of `tp encode`).
    #[arg(long)]
    json: bool,
    /// The bytes have no message header: slot, superblock, tensor-header, or a message name
    /// (its body).
    #[arg(long, value_name = "TYPE")]
    headerless: Option<Headerless>,
    /// The input is hex text (whitespace, `:` and `0x` ignored), e.g. the `hex` of a
    /// `tp listen --json` line.
    #[arg(long)]
    hex: bool,
}

/// Reads all of `FILE` or standard input.
pub fn read_input(path: &std::path::Path) -> Result<Vec<u8>, CmdError> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("reading standard input: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()).into())
    }
}

fn input_name(path: &std::path::Path) -> String {
    if path.as_os_str() == "-" {
        "standard input".into()
    } else {
        path.display().to_string()
    }
}

/// Runs `tp decode`.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let raw = read_input(&args.input)?;
    let name = input_name(&args.input);
    let bytes = if args.hex {
        let text = String::from_utf8(raw).map_err(|_| format!("{name}: hex input is not text"))?;
        util::from_hex(&text).map_err(|e| format!("{name}: {e}"))?
    } else {
        raw
    };
    if bytes.is_empty() {
        return Err(format!("{name}: empty input").into());
    }
    let decoded = match args.headerless {
        None => frames::decode_framed(&bytes),
        Some(kind) => frames::decode_headerless(kind, &bytes),
    }
    .map_err(|e| format!("{name}: {e} (first bytes {})", hex_prefix(&bytes)))?;
    if decoded.reencoded != bytes {
        eprintln!("tp: note: {}", difference(&decoded.reencoded, &bytes));
    }
    let mut out = String::new();
    if args.json {
        out = decoded.json.to_string();
        out.push('\n');
    } else {
        out.push_str(&format!("{}, {} bytes\n", decoded.title, bytes.len()));
        let mut fields = decoded.json.clone();
        if let Some(map) = fields.as_object_mut() {
            map.shift_remove("message");
            map.shift_remove("headerless");
        }
        util::json_to_lines(&fields, 1, &mut out);
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

/// The first 32 bytes in hex.
pub fn hex_prefix(bytes: &[u8]) -> String {
    let n = bytes.len().min(32);
    let more = if bytes.len() > n { "..." } else { "" };
    format!("{}{more}", util::to_hex(&bytes[..n]))
}

/// Why re-encoding does not reproduce the input.
fn difference(reencoded: &[u8], input: &[u8]) -> String {
    if input.len() > reencoded.len() && input.starts_with(reencoded) {
        return format!(
            "{} trailing bytes after the message were ignored",
            input.len() - reencoded.len()
        );
    }
    let at = reencoded
        .iter()
        .zip(input)
        .position(|(a, b)| a != b)
        .unwrap_or(reencoded.len().min(input.len()));
    format!(
        "re-encoding gives {} bytes that differ from the input's {} from byte {at} \
         (a longer block from a newer sender, non-zero padding bits, or trailing bytes)",
        reencoded.len(),
        input.len()
    )
}
