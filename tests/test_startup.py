"""TensorFlow's start-up chatter is dropped; everything else written to standard error is not."""

import os

from earth_lib.startup import filtered_stderr, is_chatter

PREAMBLE = (b"WARNING: All log messages before absl::InitializeLog() is called are written to "
            b"STDERR")
INFO = b"I0000 00:00:1796424964.007367    3645 port.cc:153] oneDNN custom operations are on."
WARN = b"W0000 00:00:1796424964.007367    3645 some.cc:1] a warning"


def test_chatter_is_what_the_level_silences():
    assert is_chatter(PREAMBLE, 1) and not is_chatter(PREAMBLE, 0)
    assert is_chatter(INFO, 1) and not is_chatter(INFO, 0)
    assert is_chatter(WARN, 2) and not is_chatter(WARN, 1)
    assert not is_chatter(b"Traceback (most recent call last):", 3)
    assert not is_chatter(b"Illegal instruction: AVX512 needed", 3)


def test_the_filter_drops_the_chatter_and_passes_the_rest_in_order(capfd):
    with filtered_stderr(3):
        os.write(2, PREAMBLE + b"\n" + INFO + b"\nreal error 1\n")
        os.write(2, WARN + b"\nreal error 2\nno newline at the end")
    err = capfd.readouterr().err
    assert err == "real error 1\nreal error 2\nno newline at the end"
    os.write(2, INFO + b"\n")  # after the block, standard error is itself again
    assert capfd.readouterr().err == INFO.decode() + "\n"
