from clarin.cli import main

raise SystemExit(main())
