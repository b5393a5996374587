//! `gateway-client`: calls the gateway's `Chat`, `ChatStream`, `ListModels` and `CountTokens` over gRPC with code that
//! tonic generated at build time from `proto/llmgateway/v1/gateway.proto`. It exists to show (and test) that a
//! client in another language, generated from proto/ alone, works; it is also a handy smoke-test tool.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tonic_types::StatusExt;

/// The generated messages and client stub (package `llmgateway.v1`). Generated code is not held to pedantic lints.
#[allow(clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("llmgateway.v1");
}

use pb::gateway_client::GatewayClient;

const DEFAULT_ADDRESS: &str = "http://127.0.0.1:50051";
const USAGE: &str = "\
usage: gateway-client [--address URL] [--timeout SECS] COMMAND

commands:
  chat --model M PROMPT          one chat completion, printed whole, then usage
  stream --model M PROMPT        the same, streamed: deltas as they arrive, then usage
  models                         the models this key may call
  count-tokens --model M TEXT    tokens in TEXT as the model's tokenizer counts them
  load --model M [--mode unary|stream] [--concurrency N] [--duration S] [--warmup S]
                                 a bounded load: N callers back to back for S seconds after a warm-up,
                                 then one JSON line: calls, latency_us and ttfc_us of the measured calls,
                                 errors (gRPC codes), window_s (benches/load.py reads it)

options:
  --address URL   the gateway (default http://127.0.0.1:50051)
  --timeout SECS  deadline sent with each call (default 120)

The gateway key is read from env GATEWAY_API_KEY and sent as `authorization: Bearer <key>`.
On a gRPC error: `error: <code>: <message>` (plus any google.rpc details) on stderr, exit status 1.";

/// What the command line asks for.
#[derive(Debug)]
struct Args {
    address: String,
    timeout: Duration,
    command: Command,
}

#[derive(Debug)]
enum Command {
    Chat { model: String, prompt: String },
    Stream { model: String, prompt: String },
    Models,
    CountTokens { model: String, text: String },
    Load { model: String, load: Load },
}

/// A bounded load: `concurrency` callers, each calling again as soon as its call ends.
#[derive(Debug, Clone, Copy)]
struct Load {
    streaming: bool,
    concurrency: usize,
    duration: Duration,
    warmup: Duration,
}

impl Load {
    fn set(&mut self, flag: &str, value: &str) -> Result<(), Failure> {
        let seconds = || {
            value
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| Failure::Usage(format!("{flag} takes a number of seconds")))
        };
        match flag {
            "--mode" => {
                self.streaming = match value {
                    "unary" => false,
                    "stream" => true,
                    other => {
                        return Err(Failure::Usage(format!(
                            "--mode takes unary or stream, not {other:?}"
                        )))
                    }
                };
            }
            "--concurrency" => {
                self.concurrency = value.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    Failure::Usage("--concurrency takes a positive number".into())
                })?;
            }
            "--duration" => self.duration = seconds()?,
            _ => self.warmup = seconds()?,
        }
        Ok(())
    }
}

/// Why the process stops early: a usage mistake (exit 2) or a failed call (exit 1).
enum Failure {
    Usage(String),
    Connect(String),
    Rpc(Status),
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Failure::Rpc(status)
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let outcome = parse_args(&argv).and_then(|args| {
        // One thread is plenty for one call at a time; it also keeps the binary's start-up cheap.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Connect(format!("cannot start the async runtime: {e}")))?;
        let (started, deadline) = (Instant::now(), args.timeout);
        runtime
            .block_on(run(args))
            .map_err(|failure| deadline_as_such(failure, started.elapsed() >= deadline))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Connect(message)) => {
            eprintln!("error: Unavailable: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Rpc(status)) => {
            report_status(&status);
            ExitCode::from(1)
        }
    }
}

/// tonic reports its own client-side deadline timer as CANCELLED "Timeout expired"; gRPC's contract (and every
/// other language's client) says `DEADLINE_EXCEEDED`, so a cancelled call past its deadline is reported as that.
fn deadline_as_such(failure: Failure, deadline_passed: bool) -> Failure {
    match failure {
        Failure::Rpc(status) if deadline_passed && status.code() == tonic::Code::Cancelled => {
            Failure::Rpc(Status::deadline_exceeded(format!(
                "deadline exceeded (client-side: {})",
                status.message()
            )))
        }
        other => other,
    }
}

/// Prints the status code and message, then the google.rpc details the gateway attaches in the
/// `grpc-status-details-bin` trailer: `ErrorInfo` (a machine-readable reason) and `RetryInfo` (when to retry).
fn report_status(status: &Status) {
    eprintln!("error: {:?}: {}", status.code(), status.message());
    if let Some(info) = status.get_details_error_info() {
        let mut metadata: Vec<String> = info
            .metadata
            .iter()
            .map(|(k, v)| format!(" {k}={v}"))
            .collect();
        metadata.sort();
        eprintln!(
            "  reason: {} (domain {}){}",
            info.reason,
            info.domain,
            metadata.concat()
        );
    }
    if let Some(retry) = status.get_details_retry_info() {
        if let Some(delay) = retry.retry_delay {
            eprintln!("  retry after: {:.3}s", delay.as_secs_f64());
        }
    }
}

fn parse_args(argv: &[String]) -> Result<Args, Failure> {
    let mut address = DEFAULT_ADDRESS.to_owned();
    let mut timeout = Duration::from_secs(120);
    let mut model: Option<String> = None;
    let mut positional: Vec<String> = Vec::new();
    let mut load = Load {
        streaming: false,
        concurrency: 16,
        duration: Duration::from_secs(3),
        warmup: Duration::from_millis(500),
    };

    let mut rest = argv.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or_else(|| Failure::Usage(format!("{name} needs a value")))
        };
        match flag {
            "--address" => address = value("--address")?,
            "--model" | "-m" => model = Some(value("--model")?),
            "--timeout" => {
                let secs: f64 = value("--timeout")?
                    .parse()
                    .map_err(|_| Failure::Usage("--timeout takes a number of seconds".into()))?;
                timeout = Duration::try_from_secs_f64(secs).map_err(|_| {
                    Failure::Usage("--timeout must be a positive number of seconds".into())
                })?;
            }
            "--mode" | "--concurrency" | "--duration" | "--warmup" => {
                load.set(flag, &value(flag)?)?;
            }
            "--" => positional.extend(rest.by_ref().cloned()),
            _ if flag.starts_with('-') && flag.len() > 1 => {
                return Err(Failure::Usage(format!("unknown option {flag}")));
            }
            _ => positional.push(arg.clone()),
        }
    }

    let mut positional = positional.into_iter();
    let name = positional
        .next()
        .ok_or_else(|| Failure::Usage("missing COMMAND".into()))?;
    let operand: Vec<String> = positional.collect();
    let need_model = || {
        model
            .clone()
            .ok_or_else(|| Failure::Usage(format!("{name} needs --model")))
    };
    let one_operand = |what: &str| match operand.as_slice() {
        [only] => Ok(only.clone()),
        _ => Err(Failure::Usage(format!(
            "{name} takes exactly one {what} (quote it)"
        ))),
    };
    let command = match name.as_str() {
        "chat" => Command::Chat {
            model: need_model()?,
            prompt: one_operand("PROMPT")?,
        },
        "stream" => Command::Stream {
            model: need_model()?,
            prompt: one_operand("PROMPT")?,
        },
        "count-tokens" => Command::CountTokens {
            model: need_model()?,
            text: one_operand("TEXT")?,
        },
        "load" if operand.is_empty() => Command::Load {
            model: need_model()?,
            load,
        },
        "load" => {
            return Err(Failure::Usage(
                "load takes no PROMPT: it sends the benchmark's".into(),
            ))
        }
        "models" if operand.is_empty() => Command::Models,
        "models" => return Err(Failure::Usage("models takes no arguments".into())),
        other => return Err(Failure::Usage(format!("unknown command {other:?}"))),
    };
    Ok(Args {
        address,
        timeout,
        command,
    })
}

type Client = GatewayClient<InterceptedService<Channel, BearerAuth>>;

/// Adds `authorization: Bearer <key>` to every call: the gateway's only authentication.
#[derive(Clone)]
struct BearerAuth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

async fn connect(address: &str) -> Result<Client, Failure> {
    let auth = match std::env::var("GATEWAY_API_KEY") {
        Ok(key) => Some(
            format!("Bearer {key}")
                .parse()
                .map_err(|_| Failure::Usage("GATEWAY_API_KEY must be printable ASCII".into()))?,
        ),
        Err(_) => None, // the gateway answers UNAUTHENTICATED, which says what to do
    };
    let endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|e| Failure::Usage(format!("bad --address {address:?}: {e}")))?
        .connect_timeout(Duration::from_secs(10));
    let channel = endpoint.connect().await.map_err(|e| {
        Failure::Connect(format!("cannot connect to {address}: {}", error_chain(&e)))
    })?;
    Ok(GatewayClient::with_interceptor(channel, BearerAuth(auth)))
}

/// "transport error: tcp connect error: Connection refused": tonic's top-level message alone says too little.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A request with the client's deadline, which the gateway honours (`DEADLINE_EXCEEDED`, upstream call cancelled).
fn with_deadline<T>(message: T, timeout: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(timeout);
    request
}

fn user_prompt(model: String, prompt: String) -> pb::ChatRequest {
    pb::ChatRequest {
        model,
        messages: vec![pb::Message {
            role: "user".into(),
            content: prompt,
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let mut client = connect(&args.address).await?;
    match args.command {
        Command::Chat { model, prompt } => {
            let response = client
                .chat(with_deadline(user_prompt(model, prompt), args.timeout))
                .await?
                .into_inner();
            let text = response.message.map(|m| m.content).unwrap_or_default();
            println!("{text}");
            println!("--");
            print_served_by(&response.model, &response.provider, response.simulated);
            println!("finish_reason: {}", response.finish_reason);
            print_usage(response.usage.as_ref());
        }
        Command::Stream { model, prompt } => {
            stream(&mut client, user_prompt(model, prompt), args.timeout).await?;
        }
        Command::Models => {
            let models = client
                .list_models(with_deadline(pb::ListModelsRequest {}, args.timeout))
                .await?
                .into_inner()
                .models;
            for m in models {
                println!(
                    "{}\tprovider={} ({})\tcontext={}\tin=${}/Mtok out=${}/Mtok\t[{}]{}",
                    m.id,
                    m.provider,
                    m.provider_type,
                    m.context_window,
                    m.input_cost_per_mtok,
                    m.output_cost_per_mtok,
                    m.capabilities.join(","),
                    if m.simulated { "\tSIMULATED" } else { "" },
                );
            }
        }
        Command::Load { model, load } => {
            println!(
                "{}",
                run_load(client, model, load, args.timeout).await.to_json()
            );
        }
        Command::CountTokens { model, text } => {
            let request = pb::CountTokensRequest {
                model,
                text,
                ..Default::default()
            };
            let counted = client
                .count_tokens(with_deadline(request, args.timeout))
                .await?
                .into_inner();
            let kind = if counted.exact { "exact" } else { "estimate" };
            println!(
                "tokens: {} ({kind}, tokenizer {})",
                counted.tokens, counted.tokenizer
            );
        }
    }
    Ok(())
}

/// Prints each delta the moment its chunk arrives, then a summary with the chunk count and time to first chunk.
async fn stream(
    client: &mut Client,
    request: pb::ChatRequest,
    timeout: Duration,
) -> Result<(), Failure> {
    use std::io::Write;

    let started = Instant::now();
    let mut chunks = client
        .chat_stream(with_deadline(request, timeout))
        .await?
        .into_inner();
    let mut stdout = std::io::stdout().lock();
    let mut count = 0_u32;
    let mut first_after: Option<Duration> = None;
    let mut last: Option<pb::ChatChunk> = None;
    let mut served_by: Option<(String, String, bool)> = None;
    // `message()` yields Ok(None) at the clean end of the stream, Err(status) if the call fails midway.
    while let Some(chunk) = chunks.message().await? {
        count += 1;
        first_after.get_or_insert_with(|| started.elapsed());
        if !chunk.model.is_empty() {
            served_by = Some((chunk.model.clone(), chunk.provider.clone(), chunk.simulated));
        }
        // Unbuffered on purpose: a person watching sees the text grow. A closed pipe ends output, not the call.
        let _ = stdout
            .write_all(chunk.delta.as_bytes())
            .and_then(|()| stdout.flush());
        last = Some(chunk);
    }
    let _ = writeln!(stdout);
    drop(stdout);
    println!("--");
    if let Some((model, provider, simulated)) = served_by {
        print_served_by(&model, &provider, simulated);
    }
    let first_ms = first_after.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!("chunks: {count} (first after {first_ms:.1} ms)");
    let last = last.unwrap_or_default();
    println!("finish_reason: {}", last.finish_reason);
    print_usage(last.usage.as_ref());
    Ok(())
}

fn print_served_by(model: &str, provider: &str, simulated: bool) {
    let label = if simulated { ", SIMULATED" } else { "" };
    println!("model: {model} (provider {provider}{label})");
}

fn print_usage(usage: Option<&pb::Usage>) {
    match usage {
        Some(u) => println!(
            "usage: prompt_tokens={} completion_tokens={} total_tokens={} cost_usd={:.8}",
            u.prompt_tokens, u.completion_tokens, u.total_tokens, u.cost_usd
        ),
        None => println!("usage: (none reported)"),
    }
}

/// What a load run measured, in the JSON shape benches/loadgen.py prints.
#[derive(Default)]
struct Measured {
    calls: usize,
    latency_us: Vec<u64>,
    ttfc_us: Vec<u64>,
    errors: Vec<i32>,
    window_s: f64,
}

impl Measured {
    fn to_json(&self) -> String {
        let list = |values: &mut dyn Iterator<Item = String>| values.collect::<Vec<_>>().join(",");
        format!(
            "{{\"calls\":[{}],\"latency_us\":[{}],\"ttfc_us\":[{}],\"errors\":[{}],\"window_s\":{}}}",
            self.calls,
            list(&mut self.latency_us.iter().map(u64::to_string)),
            list(&mut self.ttfc_us.iter().map(u64::to_string)),
            list(&mut self.errors.iter().map(i32::to_string)),
            self.window_s,
        )
    }
}

/// The benchmark's request, the same as benches/loadgen.py sends.
fn bench_request(model: &str) -> pb::ChatRequest {
    let message = |role: &str, content: &str| pb::Message {
        role: role.into(),
        content: content.into(),
        ..Default::default()
    };
    pb::ChatRequest {
        model: model.to_owned(),
        messages: vec![
            message("system", "You are a concise assistant."),
            message(
                "user",
                "Summarise the benefits of a central LLM gateway in two sentences.",
            ),
        ],
        max_tokens: Some(64),
        ..Default::default()
    }
}

/// Runs `load.concurrency` callers on this one thread (a compiled client leaves the cores to the server); calls
/// that start after the warm-up and before the end are measured.
async fn run_load(client: Client, model: String, load: Load, timeout: Duration) -> Measured {
    let begin = Instant::now();
    let measure_from = begin + load.warmup;
    let stop_at = measure_from + load.duration;
    let request = bench_request(&model);
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..load.concurrency {
        let (mut client, request) = (client.clone(), request.clone());
        callers.spawn(async move {
            let mut measured = Measured::default();
            loop {
                let start = Instant::now();
                if start >= stop_at {
                    return measured;
                }
                measured.calls += 1;
                let outcome =
                    call_once(&mut client, request.clone(), load.streaming, timeout, start).await;
                if start < measure_from {
                    continue;
                }
                match outcome {
                    Ok(first) => {
                        measured.latency_us.push(micros(start.elapsed()));
                        if let Some(first) = first {
                            measured.ttfc_us.push(micros(first));
                        }
                    }
                    Err(status) => measured.errors.push(status.code() as i32),
                }
            }
        });
    }
    let mut total = Measured::default();
    while let Some(joined) = callers.join_next().await {
        if let Ok(part) = joined {
            total.calls += part.calls;
            total.latency_us.extend(part.latency_us);
            total.ttfc_us.extend(part.ttfc_us);
            total.errors.extend(part.errors);
        }
    }
    total.window_s = (Instant::now().min(stop_at) - measure_from).as_secs_f64();
    total
}

/// One call; for a stream, the time to its first chunk.
async fn call_once(
    client: &mut Client,
    request: pb::ChatRequest,
    streaming: bool,
    timeout: Duration,
    start: Instant,
) -> Result<Option<Duration>, Status> {
    if !streaming {
        client.chat(with_deadline(request, timeout)).await?;
        return Ok(None);
    }
    let mut chunks = client
        .chat_stream(with_deadline(request, timeout))
        .await?
        .into_inner();
    let mut first = None;
    while chunks.message().await?.is_some() {
        first.get_or_insert_with(|| start.elapsed());
    }
    Ok(first)
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}
