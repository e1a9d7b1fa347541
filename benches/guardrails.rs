//! What guardrails cost per request: the pre-call pass of the built-in PII guardrail over a
//! typical chat prompt (a system prompt and a user turn, ~0.9 KB, no PII and with a few values
//! to mask), the post-call pass over a typical answer, and the throughput on a 1 MB prompt;
//! the secrets guardrail and a 50-word content filter beside it.
//!
//!     cargo bench -p switchyard --bench guardrails            # every case
//!     cargo bench -p switchyard --bench guardrails -- typical # cases whose name contains it
//!
//! No external harness: each case runs N times, five times over, and the median is printed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use switchyard::auth::Principal;
use switchyard::guardrails::{Guardrails, Run};
use switchyard::schema::{Message, Role};

const RUNS: usize = 5;

fn guardrails(yaml: &str) -> Guardrails {
    let text = format!("model_list: []\nguardrails:\n{yaml}");
    switchyard::config::parse(&text, &|_| None)
        .expect("bench config")
        .config
        .guardrails
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

const SYSTEM: &str = "You are a helpful assistant for Acme Corp's customer support team. Answer \
questions about orders, shipping, returns and billing politely and concisely. If you do not know \
the answer, say so and offer to open a ticket. Never invent order numbers or tracking codes. \
Use the customer's language. Keep answers under 200 words unless asked for detail.";

const USER_CLEAN: &str = "Hi! I ordered a pair of running shoes last Tuesday (order 88213) and \
the tracking page still says 'label created'. It's been six days now. Could you check whether \
the parcel actually left the warehouse, and if not, whether I can switch to express shipping at \
no extra cost? I'm travelling on the 14th and need them before then. Also, the size guide said \
the 10.5 runs small; should I have ordered an 11 instead? If an exchange is easier than a \
return, I'd prefer that. Thanks a lot for your help, and sorry for the long message!";

const USER_PII: &str = "Hi! I ordered a pair of running shoes last Tuesday (order 88213) and \
the tracking page still says 'label created'. Please email me at jane.doe@example.com or call \
+1 415 555 0132 when you know more. My billing IBAN is DE89 3704 0044 0532 0130 00 if a refund \
is needed. I'm travelling on the 14th and need them before then. Also, the size guide said \
the 10.5 runs small; should I have ordered an 11 instead? Thanks a lot for your help!";

const ANSWER: &str = "Thanks for reaching out, and sorry for the wait! I checked order 88213: \
the parcel left our warehouse yesterday evening and is now with the carrier, so the tracking \
page should update within 24 hours. I've upgraded it to express shipping at no cost, so it \
should arrive by Friday, well before the 14th. About sizing: that model does run about half a \
size small, so an 11 is likely a better fit. If the 10.5 doesn't fit, reply to the confirmation \
email and we'll send an 11 with a prepaid return label. I'll write to <EMAIL_ADDRESS_1> once \
the tracking updates.";

fn messages(user: &str) -> Vec<Message> {
    vec![
        Message::text(Role::System, SYSTEM),
        Message::text(Role::User, user),
    ]
}

/// Times `iterations` runs of `case` (fresh prompt each time: the pass rewrites it).
fn time(
    name: &str,
    filter: &Option<String>,
    iterations: u32,
    bytes: usize,
    mut case: impl FnMut(),
) {
    if filter.as_deref().is_some_and(|f| !name.contains(f)) {
        return;
    }
    let samples: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                case();
            }
            started.elapsed() / iterations
        })
        .collect();
    let per = median(samples);
    let rate = bytes as f64 / per.as_secs_f64() / 1e6;
    println!(
        "{name:<48} {:>10.2} µs/request {:>8.0} MB/s ({bytes} bytes)",
        per.as_secs_f64() * 1e6,
        rate
    );
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|a| a != "--bench");
    let pii = guardrails(
        "  - guardrail_name: pii\n    litellm_params: {guardrail: pii, mode: [pre_call, post_call], default_on: true, output_parse_pii: true}\n",
    );
    let secrets = guardrails(
        "  - guardrail_name: secrets\n    litellm_params: {guardrail: secrets, mode: pre_call, default_on: true}\n",
    );
    let words: String = (0..50)
        .map(|i| format!("{{keyword: 'banned phrase {i}', action: BLOCK}}"))
        .collect::<Vec<_>>()
        .join(", ");
    let filter_50 = guardrails(&format!(
        "  - guardrail_name: words\n    litellm_params: {{guardrail: litellm_content_filter, mode: pre_call, default_on: true, blocked_words: [{words}]}}\n"
    ));
    let none = Guardrails::default();
    let run = |g: &Guardrails| {
        Run::select(g, &mut Default::default(), None, &Principal::Master).expect("select")
    };
    let typical = SYSTEM.len() + USER_CLEAN.len();
    println!("guardrails, median of {RUNS} runs:");
    time(
        "no guardrail configured (select only)",
        &filter,
        200_000,
        typical,
        || {
            let mut m = messages(USER_CLEAN);
            let mut r = run(&none);
            black_box(r.pre_call_chat(&mut m)).ok();
        },
    );
    time(
        "pii pre_call, typical prompt, nothing found",
        &filter,
        20_000,
        typical,
        || {
            let mut m = messages(USER_CLEAN);
            let mut r = run(&pii);
            black_box(r.pre_call_chat(&mut m)).ok();
        },
    );
    time(
        "pii pre_call, typical prompt, 3 values masked",
        &filter,
        20_000,
        SYSTEM.len() + USER_PII.len(),
        || {
            let mut m = messages(USER_PII);
            let mut r = run(&pii);
            black_box(r.pre_call_chat(&mut m)).ok();
        },
    );
    time(
        "pii pre_call + post_call (answer un-masked)",
        &filter,
        20_000,
        SYSTEM.len() + USER_PII.len() + ANSWER.len(),
        || {
            let mut m = messages(USER_PII);
            let mut r = run(&pii);
            r.pre_call_chat(&mut m).ok();
            let mut answer: switchyard::schema::ChatCompletion = serde_json::from_value(
                serde_json::json!({"id": "x", "object": "chat.completion", "created": 0,
                    "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": ANSWER}}]}),
            )
            .expect("answer");
            black_box(r.post_call_chat(&mut answer)).ok();
        },
    );
    time(
        "secrets pre_call, typical prompt",
        &filter,
        20_000,
        typical,
        || {
            let mut m = messages(USER_CLEAN);
            let mut r = run(&secrets);
            black_box(r.pre_call_chat(&mut m)).ok();
        },
    );
    time(
        "content filter (50 words) pre_call, typical",
        &filter,
        20_000,
        typical,
        || {
            let mut m = messages(USER_CLEAN);
            let mut r = run(&filter_50);
            black_box(r.pre_call_chat(&mut m)).ok();
        },
    );
    let big: String = USER_CLEAN.repeat(1_000_000 / USER_CLEAN.len());
    time("pii pre_call, 1 MB prompt", &filter, 20, big.len(), || {
        let mut m = messages(&big);
        let mut r = run(&pii);
        black_box(r.pre_call_chat(&mut m)).ok();
    });
}
