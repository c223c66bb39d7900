from hadamard_zoo import demo


def test_demo_runs_small_models(capsys):
    assert demo.main(["pinet_ccp", "rotate_small"]) == 0
    out = capsys.readouterr().out
    assert "pinet_ccp" in out and "pretrained" in out and "rotate_small" in out


def test_demo_reports_unknown_model_and_fails(capsys):
    assert demo.main(["no_such_model"]) == 1
    assert "Unknown model name" in capsys.readouterr().out
