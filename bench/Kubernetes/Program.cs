using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Berth.Kubernetes.Bench.GenerateBenchmarks).Assembly).Run(args);
