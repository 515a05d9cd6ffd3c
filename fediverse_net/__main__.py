from fediverse_net.cli import main

raise SystemExit(main())
