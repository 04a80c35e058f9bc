"""Entry point of the leaderboard app (also what a Hugging Face Space runs).

Thin wiring only: the tabs live in ``leaderboard/ui/``. ``python app.py`` serves the
app plus an evaluation worker, like ``python -m leaderboard.serve``; imported (e.g. by
``gradio app.py`` reload mode) it exposes ``demo``.
"""

if __name__ == "__main__":
    from leaderboard.serve import main

    main()
else:
    from leaderboard.ui import build_app, launch_kwargs  # noqa: F401  (launch_kwargs for `gradio app.py`)

    demo = build_app()
