// The playground: streams POST /v1/completions into the page. Plain browser JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "gpt2kit.api_key"; // sessionStorage: the key lives as long as the tab, never on disk

let running = null; // the AbortController of the generation in flight

// ---- the request --------------------------------------------------------------------------------
class InputError extends Error {}

function numberField(id, label, integer) {
  const input = $(id);
  if (input.validity.badInput) throw new InputError(`${label}: "${input.value}" is not a number`);
  if (input.value.trim() === "") return undefined; // the server's default
  const value = Number(input.value);
  if (integer && !Number.isInteger(value)) throw new InputError(`${label}: ${input.value} is not a whole number`);
  return value;
}

// One stop string a line; escapes let a stop string be a newline or a tab.
function stopStrings() {
  const unescape = (line) => line.replace(/\\(n|t|\\)/g, (_, c) => ({ n: "\n", t: "\t", "\\": "\\" })[c]);
  return $("stop").value.split("\n").filter((line) => line !== "").map(unescape);
}

function requestBody() {
  const body = {
    prompt: $("prompt").value,
    max_tokens: numberField("max_tokens", "Max tokens", true),
    temperature: numberField("temperature", "Temperature", false),
    top_p: numberField("top_p", "Top p", false),
    top_k: numberField("top_k", "Top k", true),
    seed: numberField("seed", "Seed", true),
    stream: true,
    // usage closes the stream with the exact token count; logprobs 0 names each chunk's tokens, so
    // the count is exact while it streams too (a chunk can hold several tokens, or none yet)
    stream_options: { include_usage: true },
    logprobs: 0,
  };
  const stop = stopStrings();
  if (stop.length) body.stop = stop;
  return JSON.stringify(body); // undefined fields are left out
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api_key").value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

// The server's one-line message from an error answer (OpenAI's {"error": {"message": ...}}).
async function errorMessage(response) {
  const text = await response.text();
  try {
    const message = JSON.parse(text).error.message;
    if (message) return `${response.status}: ${message}`;
  } catch (_) {
    // not OpenAI's error object: show what came
  }
  return `${response.status} ${response.statusText}${text ? ": " + text.slice(0, 200) : ""}`;
}

// ---- server-sent events -------------------------------------------------------------------------
// Yields the `data:` payload of each event as the body arrives: "[DONE]" or a JSON text.
async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
      if (data.length) yield data.join("\n");
    }
  }
}

// ---- what the page shows ------------------------------------------------------------------------
function setStatus(text) {
  $("status").textContent = text;
}

function showError(message) {
  $("error").textContent = message;
}

function setRunning(controller) {
  running = controller;
  $("generate").disabled = controller !== null;
  $("stop_button").disabled = controller === null;
  $("output").setAttribute("aria-busy", controller !== null ? "true" : "false");
}

// Counts tokens as they come and the rate since the first one (time to first token is the prefill).
class Meter {
  constructor() {
    this.started = performance.now();
    this.first = null; // [time, tokens] at the first token
    this.tokens = 0;
    $("tokens").textContent = "0";
    $("rate").textContent = "–";
    $("ttft").textContent = "–";
  }

  add(count) {
    if (count === 0) return;
    const now = performance.now();
    this.tokens += count;
    if (this.first === null) {
      this.first = [now, this.tokens];
      $("ttft").textContent = `${Math.round(now - this.started)} ms`;
    } else if (now > this.first[0]) {
      $("rate").textContent = ((this.tokens - this.first[1]) / ((now - this.first[0]) / 1000)).toFixed(1);
    }
    $("tokens").textContent = String(this.tokens);
  }

  settle(usage) {
    if (usage && Number.isInteger(usage.completion_tokens)) {
      this.tokens = usage.completion_tokens;
      $("tokens").textContent = String(this.tokens);
    }
  }
}

function append(text) {
  const output = $("output");
  const atBottom = output.scrollHeight - output.scrollTop - output.clientHeight < 8;
  $("completion").append(text); // as text: the model's output is never parsed as HTML
  if (atBottom) output.scrollTop = output.scrollHeight;
}

// ---- generating ---------------------------------------------------------------------------------
async function generate() {
  if (running) return;
  showError("");
  let body;
  try {
    body = requestBody();
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    showError(err.message);
    return;
  }
  const controller = new AbortController();
  setRunning(controller);
  $("shown_prompt").textContent = $("prompt").value;
  $("completion").textContent = "";
  const meter = new Meter();
  let finish = null;
  setStatus("generating…");
  try {
    const response = await fetch("/v1/completions", {
      method: "POST", headers: headers(), body, signal: controller.signal,
    });
    if (!response.ok) {
      showError(await errorMessage(response));
      setStatus("error");
      return;
    }
    let ended = false;
    for await (const data of events(response.body)) {
      if (data === "[DONE]") {
        ended = true;
        break;
      }
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch (_) {
        showError(`the server sent an event that is not JSON: ${data.slice(0, 200)}`);
        setStatus("error");
        return;
      }
      if (chunk.error) { // the server failed after it had started answering
        showError(chunk.error.message);
        setStatus("error");
        return;
      }
      meter.settle(chunk.usage);
      for (const choice of chunk.choices || []) {
        append(choice.text);
        meter.add(choice.logprobs ? choice.logprobs.tokens.length : 0);
        finish = choice.finish_reason || finish;
      }
    }
    if (!ended) {
      showError("the server closed the stream before its end (data: [DONE])");
      setStatus("error");
      return;
    }
    setStatus(finish === "length" ? "done: max tokens reached" : finish ? "done: stopped by the model" : "done");
  } catch (err) {
    if (controller.signal.aborted) {
      setStatus("stopped");
    } else {
      showError(`could not reach the server: ${err.message}`);
      setStatus("error");
    }
  } finally {
    controller.abort(); // after an early return, close the stream so that the server frees the row
    setRunning(null);
  }
}

function stop() {
  // closing the connection is the signal: the server frees the request's row at its next step
  if (running) running.abort();
}

// ---- the model's name ---------------------------------------------------------------------------
async function showModel() {
  try {
    const response = await fetch("/v1/models", { headers: headers() });
    if (!response.ok) {
      $("model").textContent = "unknown";
      showError(await errorMessage(response));
      return;
    }
    const models = (await response.json()).data || [];
    $("model").textContent = models.map((m) => m.id).join(", ") || "none";
    showError("");
  } catch (err) {
    $("model").textContent = "unknown";
    showError(`could not reach the server: ${err.message}`);
  }
}

// ---- wiring -------------------------------------------------------------------------------------
function start() {
  const key = $("api_key");
  key.value = sessionStorage.getItem(KEY_STORE) || "";
  key.addEventListener("input", () => {
    const value = key.value.trim();
    if (value) sessionStorage.setItem(KEY_STORE, value);
    else sessionStorage.removeItem(KEY_STORE);
  });
  key.addEventListener("change", showModel);
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    generate();
  });
  $("stop_button").addEventListener("click", stop);
  $("clear").addEventListener("click", () => {
    $("shown_prompt").textContent = "";
    $("completion").textContent = "";
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      generate();
    } else if (event.key === "Escape" && running) {
      event.preventDefault();
      stop();
    }
  });
  setRunning(null);
  showModel();
}

start();
