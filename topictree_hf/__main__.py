from topictree_hf.cli import main

raise SystemExit(main())
