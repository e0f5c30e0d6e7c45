"""Write the data set the demo model (assets/demo-model) trains on: the shared real TinyStories sample
(``../shared/data``) without its last 200 stories, which are held out for scoring (`lab.real_sample`).

    python docs/demo_data.py workspace/default/datasets/demo-real
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.corpus import save_dataset  # noqa: E402
from lab.real_sample import HELD_OUT, held_out_split, shared_sample  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    train = held_out_split(shared_sample())[0]
    save_dataset(Path(sys.argv[1]), train, {"source": f"shared real sample without its last {HELD_OUT} stories"})
    print(f"wrote {len(train):,} real stories to {sys.argv[1]}")
