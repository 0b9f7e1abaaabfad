"""`llada-lm-eval`: the `lm_eval` command line (lm-evaluation-harness) with the `llada` model type registered.

lm-eval finds a model type only once the module that registers it is imported; this entry point imports
`llada.lm_eval_harness` and hands every argument to lm-eval's own command line:

    llada-lm-eval --model llada --model_args pretrained=DIR,mc_num=128 --tasks TASKS [--include_path DIR]
"""

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> None:
    try:
        from lm_eval.__main__ import cli_evaluate
    except ImportError as error:  # optional dependency
        raise SystemExit(f"llada-lm-eval needs lm-eval: pip install 'lm-eval>=0.4.13' ({error})") from error
    from .. import lm_eval_harness  # noqa: F401  (registers the "llada" model type)

    if argv is None:
        return cli_evaluate()
    saved_argv, sys.argv = sys.argv, [sys.argv[0], *argv]  # lm_eval's CLI reads sys.argv
    try:
        cli_evaluate()
    finally:
        sys.argv = saved_argv


if __name__ == "__main__":
    main()
