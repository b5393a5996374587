//! Bindings of `crate::otlp`: `encode_span_chunk`, the bytes of spans given as plain tuples, and `encode_export`, an
//! OTLP `ExportTraceServiceRequest` of such chunks.
//!
//! Spans arrive as tuples of ints and strs rather than SDK objects: reading a tuple item is one C call, where an
//! attribute lookup on a `ReadableSpan` runs Python code. Everything is read and owned first, then encoded.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::gil::detach_if;
use crate::otlp::{
    span_chunk_len, write_span_chunk, Event, ExportRequest, KeyValue, Span, SpanKind, Status,
    StatusCode, Value,
};

/// `(trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, attributes, events, status_code,
/// status_message, trace_state, flags)`
const SPAN_FIELDS: usize = 13;

/// From this many spans the encoding (~0.7 µs a span, a fifth of a call; the rest reads the tuples and needs the GIL)
/// runs detached. Measured with 512-span batches encoded in a loop by one thread while another sleeps 200 µs at a
/// time, as an idle event loop does: detached, that thread wakes p90 3.8-5.5 ms late instead of 8.7-17 ms (it otherwise
/// waits out the switch interval and then the whole call), with the same batches/s; for 1-64 spans alone the hand-off
/// is below the noise. Below 64 spans (~45 µs of encoding) giving the GIL away risks a switch-interval wait to get it
/// back for little gain. Figures in docs/benchmarks/otlp.md.
const DETACH_MIN_SPANS: usize = 64;

/// A batch's envelope is a copy of its chunks (~0.5 MB for 512 spans, tens of µs): from this size it runs detached.
const DETACH_MIN_BYTES: usize = 64 * 1024;

/// `encode_span_chunk(spans) -> bytes`
#[pyfunction(name = "encode_span_chunk")]
pub fn py_encode_span_chunk<'py>(
    py: Python<'py>,
    spans: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let spans = collect(spans, |index, span| {
        span_of(span).map_err(|err| in_context(py, &format!("spans[{index}]"), err))
    })?;
    // Written straight into the `bytes` object: no second buffer and copy.
    PyBytes::new_with(py, span_chunk_len(&spans), |buf| {
        detach_if(py, spans.len() >= DETACH_MIN_SPANS, || {
            let mut rest = buf;
            write_span_chunk(&spans, &mut rest);
            debug_assert!(
                rest.is_empty(),
                "span_chunk_len and write_span_chunk disagree"
            );
        });
        Ok(())
    })
}

/// `encode_export(resource_attributes, scope_name, scope_version, chunks) -> bytes`
#[pyfunction(name = "encode_export")]
pub fn py_encode_export<'py>(
    py: Python<'py>,
    resource_attributes: &Bound<'py, PyAny>,
    scope_name: &str,
    scope_version: &str,
    chunks: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let resource = attributes_of(resource_attributes)
        .map_err(|err| in_context(py, "resource_attributes", err))?;
    let mut owned: Vec<Bound<'py, PyBytes>> = Vec::with_capacity(chunks.len().unwrap_or(0));
    for (index, chunk) in chunks.try_iter()?.enumerate() {
        let chunk = chunk?;
        match chunk.downcast_into::<PyBytes>() {
            Ok(bytes) => owned.push(bytes),
            Err(err) => {
                return Err(PyTypeError::new_err(format!(
                    "chunks[{index}] must be bytes from encode_span_chunk, not {}",
                    type_name(err.into_inner().as_any())
                )))
            }
        }
    }
    let slices: Vec<&[u8]> = owned.iter().map(PyBytesMethods::as_bytes).collect();
    let request = ExportRequest::new(&resource, scope_name, scope_version, &slices);
    let len = request.encoded_len();
    PyBytes::new_with(py, len, |buf| {
        detach_if(py, len >= DETACH_MIN_BYTES, || {
            let mut rest = buf;
            request.encode(&mut rest);
            debug_assert!(rest.is_empty(), "encoded_len and encode disagree");
        });
        Ok(())
    })
}

/// Each item of an iterable through `f(index, item)`, into a Vec sized by `len()` when the iterable has one (a list
/// of 20 attributes would otherwise grow, and move, its Vec four times).
fn collect<T>(
    items: &Bound<'_, PyAny>,
    mut f: impl FnMut(usize, &Bound<'_, PyAny>) -> PyResult<T>,
) -> PyResult<Vec<T>> {
    let mut out = Vec::with_capacity(items.len().unwrap_or(0));
    for (index, item) in items.try_iter()?.enumerate() {
        out.push(f(index, &item?)?);
    }
    Ok(out)
}

fn span_of(span: &Bound<'_, PyAny>) -> PyResult<Span> {
    let fields = span.downcast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(
            "a span is a tuple (trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, attributes, \
             events, status_code, status_message, trace_state, flags)",
        )
    })?;
    if fields.len() != SPAN_FIELDS {
        return Err(PyValueError::new_err(format!(
            "a span tuple has {SPAN_FIELDS} fields, this one has {}",
            fields.len()
        )));
    }
    let field = |index: usize| fields.get_borrowed_item(index);
    let trace_id: u128 = int_of(&*field(0)?, "trace_id", "[1, 2**128)")?;
    let span_id: u64 = int_of(&*field(1)?, "span_id", "[1, 2**64)")?;
    let parent_span_id: u64 = int_of(
        &*field(2)?,
        "parent_span_id",
        "[0, 2**64) (0 for a root span)",
    )?;
    if trace_id == 0 || span_id == 0 {
        return Err(PyValueError::new_err(
            "trace_id and span_id must not be 0, the invalid id",
        ));
    }
    let kind: i32 = int_of(&*field(4)?, "kind", "[0, 5] (an OTLP SpanKind)")?;
    SpanKind::try_from(kind).map_err(|_| {
        PyValueError::new_err(format!(
            "kind is an OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer, not {kind}"
        ))
    })?;
    let status_code: i32 = int_of(&*field(9)?, "status_code", "[0, 2]")?;
    StatusCode::try_from(status_code).map_err(|_| {
        PyValueError::new_err(format!(
            "status_code is 0 (unset), 1 (ok) or 2 (error), not {status_code}"
        ))
    })?;
    Ok(Span {
        trace_id: trace_id.to_be_bytes().to_vec(),
        span_id: span_id.to_be_bytes().to_vec(),
        trace_state: str_of(&*field(11)?, "trace_state")?,
        parent_span_id: if parent_span_id == 0 {
            Vec::new()
        } else {
            parent_span_id.to_be_bytes().to_vec()
        },
        flags: int_of(&*field(12)?, "flags", "[0, 2**32)")?,
        name: str_of(&*field(3)?, "name")?,
        kind,
        start_time_unix_nano: int_of(&*field(5)?, "start_ns", "[0, 2**64)")?,
        end_time_unix_nano: int_of(&*field(6)?, "end_ns", "[0, 2**64)")?,
        attributes: attributes_of(&*field(7)?)?,
        events: events_of(&*field(8)?)?,
        // Always present, as opentelemetry-python writes it; code 0 reads as unset either way.
        status: Some(Status {
            message: str_of(&*field(10)?, "status_message")?,
            code: status_code,
        }),
    })
}

/// An iterable of `(name, time_ns, attributes)` tuples.
fn events_of(events: &Bound<'_, PyAny>) -> PyResult<Vec<Event>> {
    collect(events, |_, event| {
        let fields = event
            .downcast::<PyTuple>()
            .ok()
            .filter(|fields| fields.len() == 3)
            .ok_or_else(|| {
                PyTypeError::new_err("an event is a tuple (name, time_ns, attributes)")
            })?;
        Ok(Event {
            name: str_of(&*fields.get_borrowed_item(0)?, "event name")?,
            time_unix_nano: int_of(
                &*fields.get_borrowed_item(1)?,
                "event time_ns",
                "[0, 2**64)",
            )?,
            attributes: attributes_of(&*fields.get_borrowed_item(2)?)?,
        })
    })
}

/// An iterable of `(key, value)` tuples, such as a list of pairs or `dict.items()`.
fn attributes_of(attributes: &Bound<'_, PyAny>) -> PyResult<Vec<KeyValue>> {
    if attributes.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "attributes are (key, value) tuples, not a str",
        ));
    }
    collect(attributes, |_, pair| {
        let fields = pair
            .downcast::<PyTuple>()
            .ok()
            .filter(|fields| fields.len() == 2)
            .ok_or_else(|| {
                PyTypeError::new_err(
                    "attributes are (key, value) tuples; pass dict.items() for a dict",
                )
            })?;
        let key = str_of(&*fields.get_borrowed_item(0)?, "an attribute key")?;
        let value = value_of(&key, &*fields.get_borrowed_item(1)?)?;
        Ok(KeyValue::new(key, value))
    })
}

/// An attribute value: str, bool, int, float, or a list or tuple of those (an array).
fn value_of(key: &str, value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if let Some(scalar) = scalar_of(key, value)? {
        return Ok(scalar);
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items = collect(value, |_, item| {
            scalar_of(key, item)?.ok_or_else(|| {
                PyValueError::new_err(format!(
                    "attribute {key:?}: an array holds str, bool, int or float values, not {}",
                    type_name(item)
                ))
            })
        })?;
        return Ok(Value::Array(items.into()));
    }
    Err(PyValueError::new_err(format!(
        "attribute {key:?}: a value is a str, bool, int, float, or a list or tuple of those, not {}",
        type_name(value)
    )))
}

/// A str, bool, int or float attribute value; `None` for any other type.
fn scalar_of(key: &str, value: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    if let Ok(text) = value.downcast::<PyString>() {
        return Ok(Some(Value::String(text.to_str()?.to_owned())));
    }
    // Before int: a Python bool is an int.
    if let Ok(flag) = value.downcast::<PyBool>() {
        return Ok(Some(Value::Bool(flag.is_true())));
    }
    if value.is_instance_of::<PyInt>() {
        return value
            .extract::<i64>()
            .map(|int| Some(Value::Int(int)))
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "attribute {key:?}: an int attribute must fit in 64 bits [-2**63, 2**63)"
                ))
            });
    }
    if let Ok(float) = value.downcast::<PyFloat>() {
        return Ok(Some(Value::Double(float.value())));
    }
    Ok(None)
}

/// An int field: TypeError when it is not an int, ValueError when it is out of `range`.
fn int_of<'py, T: FromPyObject<'py>>(
    value: &Bound<'py, PyAny>,
    name: &str,
    range: &str,
) -> PyResult<T> {
    if !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an int, not {}",
            type_name(value)
        )));
    }
    value
        .extract()
        .map_err(|_| PyValueError::new_err(format!("{name} must be an int in {range}")))
}

fn str_of(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    let text = value.downcast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("{name} must be a str, not {}", type_name(value)))
    })?;
    Ok(text.to_str()?.to_owned())
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |name| name.to_string())
}

/// `err` with `context: ` before its message, for a TypeError or ValueError; other errors pass through.
fn in_context(py: Python<'_>, context: &str, err: PyErr) -> PyErr {
    let message = format!("{context}: {}", err.value(py));
    let wrapped = if err.is_instance_of::<PyTypeError>(py) {
        PyTypeError::new_err(message)
    } else if err.is_instance_of::<PyValueError>(py) {
        PyValueError::new_err(message)
    } else {
        return err;
    };
    wrapped.set_cause(py, Some(err));
    wrapped
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(py_encode_span_chunk, m)?)?;
    m.add_function(wrap_pyfunction!(py_encode_export, m)?)
}
