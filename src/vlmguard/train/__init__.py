"""Supervised fine-tuning of the rewriter.

Modules: ``config`` (the run's settings), ``data`` (row checks), ``prepare`` (checks and data before
the model), ``model`` (loading, what trains), ``collator``, ``trl_setup`` (what TRL is handed),
``metrics`` (``metrics.jsonl``), ``trainer`` (:func:`run_sft`), ``export`` (servable models).

Entry points (each imports torch / transformers / trl only when called)::

    from vlmguard.train.config import load_sft_config
    from vlmguard.train.trainer import run_sft

    summary = run_sft(load_sft_config("sft.yaml", ["max_steps=100"]))
    print(summary.eval_loss, summary.servable_dir)

See ``docs/training.md``.
"""
