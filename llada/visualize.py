"""Views of the denoising process.

- `TerminalCanvasStreamer`: a streamer for `diffusion_generate(streamer=...)` that redraws the canvas in the
  terminal after every step, masked positions shown as `MASK_PLACEHOLDER`.
- `save_decode_view`: the final text with every token coloured by the step at which it was decoded, plus the
  fraction of still-masked positions after every step; a PNG (matplotlib, imported only here) or an HTML page.

Both read `decode_step` as `LLaDAGenerateOutput` defines it: the 0-based step of each committed position, -1 for
prompt and padding.
"""

import html
import os
import shutil
import sys
import unicodedata
from pathlib import Path
from typing import List, Sequence

import torch

MASK_PLACEHOLDER = "░"


# ----------------------------------------------------------------------------------------------------------------
# Text pieces


def token_pieces(tokenizer, token_ids: Sequence[int]) -> List[str]:
    """The text each token adds, by incremental decoding (so spaces and multi-byte characters come out right)."""
    pieces, previous = [], ""
    for end in range(1, len(token_ids) + 1):
        text = tokenizer.decode(list(token_ids[:end]), skip_special_tokens=False)
        pieces.append(text[len(previous) :] if text.startswith(previous) else tokenizer.decode([token_ids[end - 1]]))
        previous = text
    return pieces


def canvas_text(tokenizer, token_ids: Sequence[int], mask_token_id: int) -> str:
    """A canvas row as text, each masked position shown as `MASK_PLACEHOLDER`.

    The row is decoded in one piece with the mask token kept (other special tokens dropped), so the tokenizer's
    own spacing rules apply, then the mask token's text is swapped for the placeholder.
    """
    special_ids = set(getattr(tokenizer, "all_special_ids", [])) - {mask_token_id}
    kept = [t for t in token_ids if t not in special_ids]
    mask_text = tokenizer.decode([mask_token_id], skip_special_tokens=False).strip()
    if not mask_text:  # the tokenizer cannot spell the mask token: decode the runs between masks
        runs = [tokenizer.decode(run) for run in _split_on(kept, mask_token_id)]
        return MASK_PLACEHOLDER.join(runs)
    return tokenizer.decode(kept, skip_special_tokens=False).replace(mask_text, MASK_PLACEHOLDER)


def _split_on(token_ids, separator):
    runs = [[]]
    for token_id in token_ids:
        if token_id == separator:
            runs.append([])
        else:
            runs[-1].append(token_id)
    return runs


def masked_fraction_per_step(decode_step: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """(batch, seq) decode steps -> (batch, num_steps + 1): fraction of generated positions still masked at the
    start and after every step."""
    generated = decode_step[:, prompt_length:]  # (batch, new)
    num_steps = int(generated.max()) + 1 if generated.numel() else 0
    steps = torch.arange(-1, num_steps, device=generated.device)  # -1 = the all-masked start
    still_masked = generated.unsqueeze(1) > steps.view(1, -1, 1)  # (batch, num_steps + 1, new)
    return still_masked.float().mean(dim=-1)


# ----------------------------------------------------------------------------------------------------------------
# Live terminal view


class TerminalCanvasStreamer:
    """Redraws every row of the canvas, prompt included, after each step of `diffusion_generate`.

    On a terminal the previous frame is overwritten in place: the frame is cut into the screen rows it really
    takes (newlines inside the text, wrapping at the terminal's width, wide characters), the cursor goes back up
    that many rows and the new frame is drawn over it. A frame taller than the screen is shown up to the screen's
    height while sampling; the final frame is drawn in full at the end. Elsewhere (a pipe, a log file) each frame is
    printed below the last, headed by its step number.

    Args:
        tokenizer: decodes the committed tokens.
        mask_token_id (`int`): shown as `MASK_PLACEHOLDER`.
        prompt_length (`int`): canvas columns of the (left-padded) prompt; padding is not shown.
        stream: where to write; defaults to `sys.stdout`.
    """

    def __init__(self, tokenizer, mask_token_id: int, prompt_length: int, stream=None):
        self.tokenizer = tokenizer
        self.mask_token_id = mask_token_id
        self.prompt_length = prompt_length
        self.stream = stream if stream is not None else sys.stdout
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.step = -1
        self._rows_drawn = 0  # screen rows the last live frame took
        self._last_frame = None  # (lines, was it cut to the screen height)

    def frame(self, canvas: torch.Tensor, step: int) -> List[str]:
        """The lines of the frame after `step` steps (0: the start): a header, then each row's text, prompt
        included."""
        header = "start" if step == 0 else f"step {step}"
        rows = [canvas_text(self.tokenizer, row.tolist(), self.mask_token_id) for row in canvas]
        return [f"[{header}]"] + [f"{i}: {text}" for i, text in enumerate(rows)]

    def put(self, canvas: torch.Tensor):
        lines = self.frame(canvas, self.step + 1)
        if self.live:
            self._redraw(lines, fit_screen=True)
        else:
            self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self.step += 1

    def end(self):
        if self.live and self._last_frame is not None and self._last_frame[1]:
            self._redraw(self._last_frame[0], fit_screen=False)  # the whole final frame, however tall
        self.stream.write("\n")
        self.stream.flush()

    def _redraw(self, lines: List[str], fit_screen: bool):
        columns, height = _terminal_size(self.stream)
        rows = [row for line in lines for row in screen_rows(line, columns)]
        cut = fit_screen and len(rows) > height - 1
        if cut:  # cursor movement cannot reach rows scrolled off the top: keep the frame within the screen
            hidden = len(rows) - (height - 2)
            rows = rows[: height - 2] + [f"... {hidden} more line(s) ..."[:columns]]
        if self._rows_drawn:
            self.stream.write(f"\r\x1b[{self._rows_drawn}A\x1b[J")  # up to the frame's first row, clear below
        self.stream.write("\n".join(rows) + "\n")
        self._rows_drawn = len(rows)
        self._last_frame = (lines, cut)


def screen_rows(line: str, columns: int) -> List[str]:
    """`line` cut into the rows a terminal `columns` wide shows it on: at newlines, and where the next character
    no longer fits (wide characters take two columns, combining marks none). Control characters are shown as `·`."""
    rows = []
    for part in line.replace("\t", "    ").split("\n"):
        row, width = "", 0
        for char in part:
            char = char if char.isprintable() else "·"
            char_width = _char_width(char)
            if width + char_width > columns:
                rows.append(row)
                row, width = "", 0
            row += char
            width += char_width
        rows.append(row)
    return rows


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _terminal_size(stream):
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        size = shutil.get_terminal_size()
    return max(size.columns, 1), max(size.lines, 3)


# ----------------------------------------------------------------------------------------------------------------
# Decode-order view (PNG or HTML)


def save_decode_view(
    path,
    tokenizer,
    sequences: torch.Tensor,
    decode_step: torch.Tensor,
    prompt_length: int,
    title: str = "Decoding order",
) -> Path:
    """Writes the decode-order view of a `diffusion_generate` result to `path` (`.png` or `.html`).

    Args:
        sequences (`(batch, seq)`), decode_step (`(batch, seq)`): from `LLaDAGenerateOutput`.
        prompt_length (`int`): columns of the prompt (drawn grey).

    Returns: the path written. The file appears complete or not at all.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise ValueError(f"save_decode_view: `path` must end in .png or .html, got {str(path)!r}.")
    rows = _rows_of_pieces(tokenizer, sequences, decode_step, prompt_length)
    fractions = masked_fraction_per_step(decode_step, prompt_length).tolist()
    num_steps = max(len(fractions[0]) - 1, 1) if fractions else 1
    writer = _write_png if suffix == ".png" else _write_html
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = str(path.with_name(f".{path.name}.{os.getpid()}.tmp"))  # renamed into place once complete
    try:
        writer(tmp_name, rows, fractions, num_steps, title)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return path


def _rows_of_pieces(tokenizer, sequences, decode_step, prompt_length):
    """Per row, a list of (text piece, step) with step -1 for the prompt; padding dropped."""
    special_ids = set(getattr(tokenizer, "all_special_ids", []))
    rows = []
    for ids, steps in zip(sequences.tolist(), decode_step.tolist()):
        kept = [(t, s) for i, (t, s) in enumerate(zip(ids, steps)) if not (i < prompt_length and t in special_ids)]
        pieces = token_pieces(tokenizer, [t for t, _ in kept]) if kept else []
        rows.append([(piece, step) for piece, (_, step) in zip(pieces, kept)])
    return rows


def _step_colour(step: int, num_steps: int):
    """RGB in [0, 1] from matplotlib's 'viridis' endpoints, interpolated without importing matplotlib."""
    if step < 0:
        return (0.55, 0.55, 0.55)
    stops = [
        (0.267, 0.005, 0.329),
        (0.229, 0.322, 0.546),
        (0.128, 0.567, 0.551),
        (0.369, 0.789, 0.383),
        (0.993, 0.906, 0.144),
    ]
    t = step / max(num_steps - 1, 1) * (len(stops) - 1)
    low = min(int(t), len(stops) - 2)
    frac = t - low
    return tuple(a + (b - a) * frac for a, b in zip(stops[low], stops[low + 1]))


def _write_html(path, rows, fractions, num_steps, title):
    samples = []
    for index, row in enumerate(rows):
        body = "".join(_html_token(piece, step, num_steps) for piece, step in row)
        samples.append(f"<h3>sample {index}</h3><pre>{body}</pre>")
    legend = "".join(_html_token("  ", step, num_steps) for step in range(num_steps))
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em;background:#fafafa;color:#222} pre{white-space:pre-wrap;"
        "font-size:15px;line-height:1.6;background:#fff;border:1px solid #ddd;padding:1em}</style></head><body>"
        f"<h2>{html.escape(title)}</h2><p>Background colour = step at which the token was decoded: first "
        f"<code>{legend}</code> last; grey text = prompt. Hover a token for its step.</p>"
        f"{''.join(samples)}<h3>Masked fraction per step</h3>{_svg_plot(fractions, num_steps)}</body></html>"
    )
    Path(path).write_text(page, encoding="utf-8")


def _html_token(piece, step, num_steps):
    if step < 0:
        return f'<span title="prompt" style="color:#888">{html.escape(piece)}</span>'
    colour = _step_colour(step, num_steps)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    text_colour = "#000" if luminance > 0.5 else "#fff"
    return (
        f'<span title="step {step}" style="background:{_hex(colour)};color:{text_colour}">{html.escape(piece)}</span>'
    )


def _svg_plot(fractions, num_steps, width=640, height=240, margin=40):
    """An inline SVG line plot of the masked fraction (y) against the step (x), one line per sample."""
    lines = []
    for index, row in enumerate(fractions):
        points = " ".join(
            f"{margin + (width - 2 * margin) * step / max(len(row) - 1, 1):.1f},"
            f"{height - margin - (height - 2 * margin) * value:.1f}"
            for step, value in enumerate(row)
        )
        colour = _hex(_step_colour(index, max(len(fractions), 2)))
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
    axes = (
        f'<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" y2="{height - margin}" stroke="#888"/>'
        f'<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" stroke="#888"/>'
        f'<text x="{width / 2}" y="{height - 8}" fill="#222" font-size="12">step (0 = start, {num_steps} = end)'
        f'</text><text x="4" y="{margin - 8}" fill="#222" font-size="12">masked fraction (1 at top)</text>'
    )
    return f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">{axes}{"".join(lines)}</svg>'


def _hex(rgb) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb)


def _write_png(path, rows, fractions, num_steps, title, chars_per_line=100, figure_width=11.0):
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    lines = _wrap_pieces(rows, chars_per_line)
    text_height = 0.26 * (len(lines) + 1)
    figure = Figure(figsize=(figure_width, text_height + 3.0))
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, height_ratios=[text_height, 2.2], width_ratios=[1, 0.015], hspace=0.35)
    norm, cmap = Normalize(0, max(num_steps - 1, 1)), colormaps["viridis"]

    text_ax = figure.add_subplot(grid[0, 0])
    text_ax.axis("off")
    text_ax.set_xlim(0, chars_per_line)
    text_ax.set_ylim(len(lines) - 0.5, -0.5)
    text_ax.set_title(f"{title}: token colour = decode step, grey = prompt", loc="left", fontsize=10)
    # monospace glyphs advance 0.6 em: choose the size at which `chars_per_line` columns fill the axes
    fontsize = text_ax.get_position().width * figure_width * 72 / (0.6 * chars_per_line)
    for line_number, line in enumerate(lines):
        for column, text, step in line:
            colour = cmap(norm(step)) if step >= 0 else (0.5, 0.5, 0.5)
            text_ax.text(
                column,
                line_number,
                text,
                family="monospace",
                fontsize=fontsize,
                va="center",
                color=colour,
                fontweight="bold" if step >= 0 else "normal",
            )
    figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=figure.add_subplot(grid[0, 1]), label="decode step")

    plot_ax = figure.add_subplot(grid[1, 0])
    for index, row in enumerate(fractions):
        plot_ax.plot(range(len(row)), row, marker=".", label=f"sample {index}")
    plot_ax.set_xlabel("step (0 = start)")
    plot_ax.set_ylabel("masked fraction")
    plot_ax.set_ylim(-0.02, 1.02)
    plot_ax.grid(alpha=0.3)
    if len(fractions) > 1:
        plot_ax.legend(fontsize=8)
    figure.savefig(path, dpi=110, format="png", bbox_inches="tight")


def _wrap_pieces(rows, chars_per_line):
    """Lays the pieces out on a monospace grid: lines of (column, text, step), a header line per sample."""
    lines = []
    for index, row in enumerate(rows):
        lines.append([(0, f"sample {index}", -1)])
        current, column = [], 0
        for piece, step in row:
            piece = "".join(c if c.isprintable() or c == "\n" else "·" for c in piece.replace("\t", "    "))
            for part_number, part in enumerate(piece.split("\n")):
                if part_number:
                    current.append((column, "⏎", step))
                    lines.append(current)
                    current, column = [], 0
                while part:
                    if column >= chars_per_line:
                        lines.append(current)
                        current, column = [], 0
                    chunk = part[: chars_per_line - column]
                    current.append((column, chunk, step))
                    column += len(chunk)
                    part = part[len(chunk) :]
        lines.append(current)
    return lines
