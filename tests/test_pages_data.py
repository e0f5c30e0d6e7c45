from helpers import open_page


def test_home_page_links_every_step(workspace_dir):
    at = open_page()
    assert not at.exception
    assert "TinyLab" in at.title[0].value


def test_data_page_shows_tables_and_saves(workspace_dir):
    at = open_page("pages/1_data.py")
    assert not at.exception
    assert len(at.dataframe) >= 3  # statistics, train, test
    train = at.dataframe[1].value
    assert len(train) == 70
    at.button(key="FormSubmitter:save_unary-💾 Save").click().run()
    assert not at.exception and not at.error
    assert (workspace_dir / "default" / "datasets" / "unary" / "train.jsonl").exists()


def test_data_page_bad_split_shows_message(workspace_dir):
    at = open_page("pages/1_data.py")
    at.multiselect[0].set_value([]).run()
    assert not at.exception
    assert "empty" in at.error[0].value
