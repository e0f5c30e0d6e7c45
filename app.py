"""TinyLab: the home page and the navigation between the lab's steps."""

from pathlib import Path

import streamlit as st

import ui

HERE = Path(__file__).parent

st.set_page_config(page_title="TinyLab", page_icon="🧪", layout="wide")

STEPS = [
    ("pages/1_data.py", "Data", "🗂️", "Build the unary-counting task and a story corpus; train a tokenizer."),
    ("pages/2_train.py", "Train", "🏋️", "Train a GPT-Neo model from scratch or fine-tune one, with live curves."),
    ("pages/3_evaluate.py", "Evaluate", "📏", "Teacher-forced accuracy, exact match, perplexity, ROUGE, BLEU, probes."),
    ("pages/4_sample.py", "Sample", "🎲", "Greedy, temperature, top-k, top-p: watch the next-token distribution."),
    ("pages/5_attention.py", "Attention", "👀", "Attention maps per layer and head; positional vs semantic heads."),
    ("pages/6_neurons.py", "Neurons", "🧠", "Which tokens make each MLP neuron fire; word-class selectivity."),
    ("pages/8_experiments.py", "Experiments", "🔬", "A grid of runs x seeds that answers one question, with 95 % CIs."),
    ("pages/7_teacher.py", "Teacher", "🧑‍🏫", "For the teacher: active sessions, the training queue, stop a job, limits."),
]
STEPS = [step for step in STEPS if (HERE / step[0]).exists()]  # pages land one issue at a time


def home() -> None:
    st.title("🧪 TinyLab")
    st.markdown(
        "Build a data set, train a **tiny language model**, evaluate it, play with sampling and look inside it "
        "— attention maps and neuron activations — as the *TinyStories* paper (Eldan & Li, 2023) did. "
        "Everything runs on this machine; nothing needs the internet."
    )
    st.info(f"Computations run on: **{ui.describe_device(ui.pick_device())}**", icon="🖥️")
    st.caption("The **demo story model** (a 4-layer GPT-Neo) was trained on 1,006 real TinyStories stories and "
               "scores 1.47 bits per character on 200 real stories it never saw; the lab's own story "
               "generator, the default corpus, needs no download.")
    cols = st.columns(3)
    for n, (path, title, icon, text) in enumerate(STEPS):
        with cols[n % 3].container(border=True):
            st.page_link(path, label=f"**{n + 1}. {title}**", icon=icon)
            st.caption(text)
    with st.expander("How the steps fit together"):
        st.markdown(
            "1. **Data** — the unary task (*Please count up in unary…*), 70 train / 30 test examples split by "
            "the last digit, and stories from the offline generator or TinyStories.\n"
            "2. **Train** — GPT-Neo presets shaped like TinyStories-1M/3M; every run is saved with checkpoints.\n"
            "3. **Evaluate** — one forward pass per batch, no `generate()`: does the model generalise to the "
            "held-out numbers, or did it learn a shallow heuristic?\n"
            "4. **Sample** — how decoding settings change what the model writes.\n"
            "5–6. **Attention / Neurons** — reproduce the paper's interpretability findings on your model."
        )


pages = [st.Page(home, title="Home", icon="🏠", default=True)]
pages += [st.Page(path, title=title, icon=icon) for path, title, icon, _ in STEPS]
ui.require_app()  # the first run after the server starts: leave old-style pages mode first
page = st.navigation(pages)
ui.sidebar()  # after st.navigation: its widgets get the same ids in every run (else a first click there is lost)
page.run()
