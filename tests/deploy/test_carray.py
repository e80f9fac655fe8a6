"""The C header: valid C and C++ that holds exactly the model bytes, aligned; bad input is refused."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tinyevo.deploy.carray import c_header, write_c_files
from tinyevo.deploy.errors import DeployError

PAYLOAD = bytes(range(256)) * 3 + b"TFL3tail"


def _array_bytes(text: str) -> bytes:
    body = text[text.index("= {") + 3 : text.index("};")]
    return bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body))


def test_header_holds_the_bytes_and_the_sizes() -> None:
    text = c_header(PAYLOAD, name="net", arena_bytes=4242)
    assert _array_bytes(text) == PAYLOAD
    assert f"#define NET_LEN {len(PAYLOAD)}u" in text
    assert "#define NET_ARENA_BYTES 4242u" in text


@pytest.mark.parametrize("name", ["1net", "net-model", "", "a b"])
def test_invalid_identifiers_are_refused(name: str) -> None:
    with pytest.raises(DeployError, match="identifier"):
        c_header(PAYLOAD, name=name)


def test_empty_model_and_bad_alignment_are_refused() -> None:
    with pytest.raises(DeployError, match="empty"):
        c_header(b"", name="net")
    with pytest.raises(DeployError, match="power of two"):
        c_header(PAYLOAD, name="net", alignment=12)


@pytest.mark.parametrize("compiler,std,suffix", [("gcc", "-std=c99", "c"), ("gcc", "-std=c11", "c"),
                                                 ("g++", "-std=c++11", "cc")])
def test_header_compiles_and_the_array_is_aligned(tmp_path: Path, compiler: str, std: str, suffix: str) -> None:
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    _h, j = write_c_files(tmp_path, PAYLOAD, name="tinyevo_model", arena={"arena_bytes": 1234})
    assert json.loads(j.read_text())["arena_bytes"] == 1234
    main = tmp_path / f"main.{suffix}"
    main.write_text(
        '#include "tinyevo_model.h"\n#include <stdio.h>\n'
        "int main(void) {\n"
        "  unsigned long sum = 0; size_t i;\n"
        "  for (i = 0; i < tinyevo_model_len; ++i) sum += tinyevo_model[i];\n"
        '  printf("%lu %lu %u %d\\n", (unsigned long)tinyevo_model_len, sum, (unsigned)TINYEVO_MODEL_ARENA_BYTES,\n'
        "         (int)(((size_t)tinyevo_model) % 16));\n"
        "  return 0;\n}\n"
    )
    exe = tmp_path / "main"
    subprocess.run([compiler, std, "-Wall", "-Wextra", "-Werror", str(main), "-o", str(exe)], check=True,
                   capture_output=True, timeout=1800)  # hang guards only, never a speed check
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=1800).stdout.split()
    assert out == [str(len(PAYLOAD)), str(sum(PAYLOAD)), "1234", "0"]
