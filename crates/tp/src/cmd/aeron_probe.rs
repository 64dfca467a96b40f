//! `tp aeron-probe send|recv`: numbered messages over Aeron, every one checked on arrival.
//! A test tool: it proves two processes exchange messages through a media driver.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tensorpool_aeron::{AeronClient, ClaimError};

use super::CmdError;

/// Send or receive numbered test messages.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Send or receive.
    #[arg(value_enum)]
    role: Role,
    /// Aeron directory of the media driver.
    #[arg(long)]
    dir: PathBuf,
    /// Aeron channel.
    #[arg(long, default_value = "aeron:ipc")]
    channel: String,
    /// Stream id.
    #[arg(long, default_value_t = 1001)]
    stream_id: i32,
    /// How many messages.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Message size in bytes (at least 8: the sequence number).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(8..=16_777_216))]
    size: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Role {
    Send,
    Recv,
}

/// The byte at `index` of message `seq` (after the 8-byte sequence number).
fn pattern_byte(seq: u64, index: usize) -> u8 {
    (seq as u8).wrapping_add((index as u8).wrapping_mul(13))
}

/// Runs the probe.
pub fn run(args: &Args) -> Result<(), CmdError> {
    let timeout = Duration::from_secs(args.timeout_secs);
    let deadline = Instant::now() + timeout;
    let client = AeronClient::connect(&args.dir, timeout)?;
    match args.role {
        Role::Send => send(&client, args, deadline),
        Role::Recv => recv(&client, args, deadline),
    }
}

fn idle(round: &mut u32) {
    *round = (*round + 1).min(8);
    std::thread::sleep(Duration::from_micros(10u64 << *round));
}

fn send(client: &AeronClient, args: &Args, deadline: Instant) -> Result<(), CmdError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let mut publication =
        client.add_exclusive_publication(&args.channel, args.stream_id, timeout)?;
    let size = args.size as usize;
    let mut round = 0;
    while !publication.is_connected() {
        if Instant::now() >= deadline {
            return Err("timed out waiting for a subscriber".into());
        }
        idle(&mut round);
    }
    for seq in 0..args.count {
        round = 0;
        loop {
            let result = publication.publish(size, |buf| {
                buf[..8].copy_from_slice(&seq.to_le_bytes());
                for (i, b) in buf[8..].iter_mut().enumerate() {
                    *b = pattern_byte(seq, i);
                }
                Ok::<(), std::convert::Infallible>(())
            });
            match result {
                Ok(_) => break,
                Err(ClaimError::Publish(e)) if e.is_retryable() => {
                    if Instant::now() >= deadline {
                        return Err(format!("timed out sending message {seq}: {e}").into());
                    }
                    idle(&mut round);
                }
                Err(e) => return Err(format!("sending message {seq}: {e}").into()),
            }
        }
    }
    println!("sent {}", args.count);
    let _ = std::io::stdout().flush();
    // Keep the stream open until the receiver has gone (it leaves once it has everything).
    round = 0;
    while publication.is_connected() && Instant::now() < deadline {
        idle(&mut round);
    }
    Ok(())
}

fn recv(client: &AeronClient, args: &Args, deadline: Instant) -> Result<(), CmdError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let mut subscription = client.add_subscription(&args.channel, args.stream_id, timeout)?;
    println!("ready");
    let _ = std::io::stdout().flush();
    let size = args.size as usize;
    let mut next = 0u64;
    let mut failure: Option<String> = None;
    let mut round = 0;
    while next < args.count && failure.is_none() {
        let read = subscription.poll(
            |msg, _| {
                if failure.is_some() {
                    return;
                }
                failure = check(msg, size, next);
                next += 1;
            },
            64,
        )?;
        if read == 0 {
            if Instant::now() >= deadline {
                return Err(format!("timed out after {next} of {} messages", args.count).into());
            }
            idle(&mut round);
        } else {
            round = 0;
        }
    }
    if let Some(failure) = failure {
        return Err(failure.into());
    }
    println!("received {next}");
    Ok(())
}

/// Checks message `expected`: its length, sequence number and every pattern byte.
fn check(msg: &[u8], size: usize, expected: u64) -> Option<String> {
    if msg.len() != size {
        return Some(format!(
            "message {expected}: {} bytes, expected {size}",
            msg.len()
        ));
    }
    let mut head = [0u8; 8];
    head.copy_from_slice(&msg[..8]);
    let seq = u64::from_le_bytes(head);
    if seq != expected {
        return Some(format!(
            "expected message {expected}, got {seq}: messages lost or reordered"
        ));
    }
    let bad = msg[8..]
        .iter()
        .enumerate()
        .position(|(i, &b)| b != pattern_byte(seq, i));
    bad.map(|i| format!("message {seq}: byte {} differs", i + 8))
}
