from einsumcc.cli import main

raise SystemExit(main())
