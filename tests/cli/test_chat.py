"""`gpt2kit chat` driven through a pseudo-terminal, as a person would use it."""

from __future__ import annotations

import signal
import sys
import time

import pexpect

PROMPT = ">>> "


def default_sigint() -> None:
    # a suite started in the background by a script inherits SIGINT ignored, and Python then never
    # raises KeyboardInterrupt: the child gets the terminal's default, as a person's shell gives it
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(model_dir, *extra):
    return pexpect.spawn(sys.executable, ["-m", "gpt2kit", "chat", "--model", str(model_dir), *extra],
                         encoding="utf-8", timeout=120, dimensions=(40, 200), preexec_fn=default_sigint)


def test_chat_session(model_dir):
    child = spawn(model_dir, "--max-new-tokens", "8", "--seed", "0")
    try:
        child.expect_exact(PROMPT)
        # a prompt and its streamed answer, then the prompt again
        child.sendline("In the beginning")
        child.expect_exact(PROMPT)
        answer = child.before.split("In the beginning", 1)[1].strip()
        assert answer

        # settings change from the prompt and are refused when invalid, keeping the session
        child.sendline("/temperature 0.5")
        child.expect_exact("temperature = 0.5")
        child.expect_exact(PROMPT)
        child.sendline("/top_k 40")
        child.expect_exact("top_k = 40")
        child.expect_exact(PROMPT)
        child.sendline("/top_p 7")
        child.expect_exact("error: top-p must be in (0, 1]")
        child.expect_exact(PROMPT)
        child.sendline("/settings")
        child.expect_exact("temperature = 0.5")
        child.expect_exact(PROMPT)

        # Ctrl-C in the middle of a long generation stops it and keeps the session
        child.sendline("/max_new_tokens 1000000")
        child.expect_exact(PROMPT)
        child.sendline("Go on and on")
        child.expect_exact("Go on and on")  # the terminal's echo of the line
        child.expect(r"\S")  # the answer has started: the interrupt falls inside generation
        time.sleep(0.2)
        child.sendintr()
        child.expect_exact("[interrupted]")
        child.expect_exact(PROMPT)

        # the session still answers after the interruption
        child.sendline("/max_new_tokens 3")
        child.expect_exact(PROMPT)
        child.sendline("Again")
        child.expect_exact(PROMPT)

        # Ctrl-D leaves with exit status 0
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before


def test_generate_interactive_is_the_same_loop(model_dir):
    child = pexpect.spawn(sys.executable, ["-m", "gpt2kit", "generate", "--interactive", "--model", str(model_dir),
                                           "--max-new-tokens", "4"], encoding="utf-8", timeout=120)
    try:
        child.expect_exact(PROMPT)
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_chat_refuses_several_samples_and_beams_at_start(model_dir):
    """chat streams one sample per line: options for several would fail on every prompt, so they are refused."""
    from helpers import assert_user_error, run_cli

    for flag in ("--num-samples", "--num-beams", "--logprobs"):  # streamed text has no room for log-probabilities
        result = run_cli("chat", "--model", str(model_dir), flag, "2")
        assert_user_error(result, flag)
        assert ">>>" not in result.stdout


def test_chat_stop_string_escapes(model_dir):
    child = spawn(model_dir, "--max-new-tokens", "4")
    try:
        child.expect_exact(PROMPT)
        child.sendline("/stop a\\tb")
        child.expect_exact("stop = ['a\\tb']")
        child.expect_exact(PROMPT)
        child.sendline("/stop C:\\dir")
        child.expect_exact("error: stop string 'C:\\dir': unknown escape \\d")
        child.expect_exact(PROMPT)
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
