//! Bindings of `crate::tokens`: encode, decode, count (single, batch, chat).
//!
//! Texts are borrowed from the Python `str` (no copy) and the GIL is released while the BPE runs, once the input is
//! big enough for the hand-off to pay (see `DETACH_MIN_BYTES`).

use std::borrow::Cow;
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyString;

use super::errors::invalid_argument;
use super::gil::detach_if;
use crate::tokens::{self, AllowedSpecial, ChatMessage, ChatOverhead, Encoding};

/// Counting runs at ~3 µs a kB (o200k_base); from 8 kB (~25 µs) other threads gain more from the GIL than getting it
/// back may cost (see `super::gil`). A short count kept attached: 61 ns for 11 bytes, against 75 ns detached even
/// with no other thread waiting. Figures in docs/benchmarks/tokens.md.
const DETACH_MIN_BYTES: usize = 8 * 1024;

/// The encoding called `name`, loaded. Its first load (~35 ms for o200k_base) runs without the GIL, so the process's
/// other threads run meanwhile; a call that arrives while another thread loads it waits for that load, detached too.
fn encoding_of(py: Python<'_>, name: &str) -> PyResult<Encoding> {
    let encoding = Encoding::from_name(name)?;
    if !encoding.is_loaded() {
        py.detach(|| encoding.load());
    }
    Ok(encoding)
}

/// The UTF-8 text of a `str`, borrowed. A `str` holding lone surrogates has no UTF-8 form: like tiktoken, round-trip
/// it through UTF-16 with `surrogatepass`/`replace`, which pairs surrogates that form a pair and replaces the rest.
fn text_of<'a>(text: &'a Bound<'_, PyString>) -> PyResult<Cow<'a, str>> {
    if let Ok(borrowed) = text.to_str() {
        return Ok(Cow::Borrowed(borrowed));
    }
    let fixed = text
        .call_method1("encode", ("utf-16", "surrogatepass"))?
        .call_method1("decode", ("utf-16", "replace"))?;
    Ok(Cow::Owned(fixed.extract::<String>()?))
}

/// The special tokens argument: None, "all", or an iterable of special-token texts.
fn allowed_names(allowed_special: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<String>>> {
    let Some(allowed) = allowed_special else {
        return Ok(None);
    };
    if let Ok(text) = allowed.downcast::<PyString>() {
        return if text.to_str()? == "all" {
            Ok(Some(vec!["all".to_owned()]))
        } else {
            Err(invalid_argument(
                "allowed_special takes \"all\" or a set of special-token texts such as {\"<|endoftext|>\"}",
            ))
        };
    }
    allowed
        .try_iter()?
        .map(|item| item?.extract::<String>())
        .collect::<PyResult<Vec<_>>>()
        .map(Some)
}

fn with_allowed<T>(names: Option<&[String]>, f: impl FnOnce(&AllowedSpecial<'_>) -> T) -> T {
    match names {
        None => f(&AllowedSpecial::None),
        Some([all]) if all == "all" => f(&AllowedSpecial::All),
        Some(names) => {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            f(&AllowedSpecial::Only(&refs))
        }
    }
}

fn texts_of<'py>(texts: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyString>>> {
    if texts.is_instance_of::<PyString>() {
        return Err(invalid_argument(
            "texts must be a sequence of str, not one str",
        ));
    }
    texts
        .try_iter()?
        .map(|item| Ok(item?.downcast_into::<PyString>()?))
        .collect()
}

/// `encode(text, encoding_name, allowed_special=None) -> list[int]`
#[pyfunction(name = "encode", signature = (text, encoding_name, allowed_special = None))]
pub fn py_encode(
    py: Python<'_>,
    text: &Bound<'_, PyString>,
    encoding_name: &str,
    allowed_special: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<u32>> {
    let encoding = encoding_of(py, encoding_name)?;
    let names = allowed_names(allowed_special)?;
    let text = text_of(text)?;
    let text: &str = &text;
    let ids = detach_if(py, text.len() >= DETACH_MIN_BYTES, || {
        with_allowed(names.as_deref(), |allowed| {
            tokens::encode(encoding, text, allowed)
        })
    })?;
    Ok(ids)
}

/// `count_tokens(text, encoding_name) -> int`
#[pyfunction(name = "count_tokens")]
pub fn py_count_tokens(
    py: Python<'_>,
    text: &Bound<'_, PyString>,
    encoding_name: &str,
) -> PyResult<usize> {
    let encoding = encoding_of(py, encoding_name)?;
    let text = text_of(text)?;
    let text: &str = &text;
    Ok(detach_if(py, text.len() >= DETACH_MIN_BYTES, || {
        tokens::count(encoding, text)
    }))
}

/// `decode(ids, encoding_name) -> str`
#[pyfunction(name = "decode")]
pub fn py_decode(py: Python<'_>, ids: Vec<u32>, encoding_name: &str) -> PyResult<String> {
    let encoding = encoding_of(py, encoding_name)?;
    Ok(detach_if(py, ids.len() * 4 >= DETACH_MIN_BYTES, || {
        tokens::decode(encoding, &ids)
    })?)
}

/// `count_tokens_batch(texts, encoding_name) -> list[int]`
#[pyfunction(name = "count_tokens_batch")]
pub fn py_count_tokens_batch(
    py: Python<'_>,
    texts: &Bound<'_, PyAny>,
    encoding_name: &str,
) -> PyResult<Vec<usize>> {
    let encoding = encoding_of(py, encoding_name)?;
    let objects = texts_of(texts)?;
    let texts = objects.iter().map(text_of).collect::<PyResult<Vec<_>>>()?;
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    Ok(detach_if(py, bytes >= DETACH_MIN_BYTES, || {
        tokens::count_batch(encoding, &texts)
    }))
}

/// `encode_batch(texts, encoding_name, allowed_special=None) -> list[list[int]]`
#[pyfunction(name = "encode_batch", signature = (texts, encoding_name, allowed_special = None))]
pub fn py_encode_batch(
    py: Python<'_>,
    texts: &Bound<'_, PyAny>,
    encoding_name: &str,
    allowed_special: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<Vec<u32>>> {
    let encoding = encoding_of(py, encoding_name)?;
    let names = allowed_names(allowed_special)?;
    let objects = texts_of(texts)?;
    let texts = objects.iter().map(text_of).collect::<PyResult<Vec<_>>>()?;
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    let ids = detach_if(py, bytes >= DETACH_MIN_BYTES, || {
        with_allowed(names.as_deref(), |allowed| {
            tokens::encode_batch(encoding, &texts, allowed)
        })
    })?;
    Ok(ids)
}

/// `count_chat_tokens(messages, encoding_name, per_message=3, per_name=1, reply=3) -> int`
/// where each message is a `(role, name, text)` tuple (`name` empty when absent).
#[pyfunction(
    name = "count_chat_tokens",
    signature = (messages, encoding_name, per_message = 3, per_name = 1, reply = 3)
)]
pub fn py_count_chat_tokens(
    py: Python<'_>,
    messages: Vec<(
        Bound<'_, PyString>,
        Bound<'_, PyString>,
        Bound<'_, PyString>,
    )>,
    encoding_name: &str,
    per_message: i64,
    per_name: i64,
    reply: i64,
) -> PyResult<usize> {
    let encoding = encoding_of(py, encoding_name)?;
    let owned = messages
        .iter()
        .map(|(role, name, text)| Ok((text_of(role)?, text_of(name)?, text_of(text)?)))
        .collect::<PyResult<Vec<_>>>()?;
    let messages: Vec<ChatMessage<'_>> = owned
        .iter()
        .map(|(role, name, text)| ChatMessage { role, name, text })
        .collect();
    let bytes: usize = messages.iter().map(|m| m.text.len()).sum();
    let overhead = ChatOverhead {
        per_message,
        per_name,
        reply_priming: reply,
    };
    Ok(detach_if(py, bytes >= DETACH_MIN_BYTES, || {
        tokens::count_chat(encoding, &messages, overhead)
    }))
}

/// `special_tokens(encoding_name) -> dict[str, int]`
#[pyfunction(name = "special_tokens")]
pub fn py_special_tokens(encoding_name: &str) -> PyResult<HashMap<&'static str, u32>> {
    Ok(Encoding::from_name(encoding_name)?
        .special_tokens()
        .iter()
        .copied()
        .collect())
}

/// `load_encoding(encoding_name) -> None`: load the embedded vocabulary now rather than in the first call that needs it
/// (a supervisor does, before it forks workers that then share its pages).
#[pyfunction(name = "load_encoding")]
pub fn py_load_encoding(py: Python<'_>, encoding_name: &str) -> PyResult<()> {
    encoding_of(py, encoding_name).map(drop)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(py_encode, m)?)?;
    m.add_function(wrap_pyfunction!(py_count_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(py_decode, m)?)?;
    m.add_function(wrap_pyfunction!(py_count_tokens_batch, m)?)?;
    m.add_function(wrap_pyfunction!(py_encode_batch, m)?)?;
    m.add_function(wrap_pyfunction!(py_count_chat_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(py_special_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(py_load_encoding, m)?)?;
    m.add("ENCODINGS", tokens::ENCODING_NAMES.to_vec())?;
    Ok(())
}
