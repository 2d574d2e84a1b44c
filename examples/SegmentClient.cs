// Segment one 16-bit frame with a running `unet-edge serve` (.NET / Mono, no packages).
// mcs -r:System.Net.Http SegmentClient.cs && mono SegmentClient.exe frame.raw 512 512 [url]
using System;
using System.IO;
using System.Linq;
using System.Net.Http;
using System.Net.Http.Headers;

class SegmentClient {
    static void Main(string[] args) {
        byte[] pixels = File.ReadAllBytes(args[0]); // raw little-endian uint16, H*W*2 bytes
        string url = (args.Length > 3 ? args[3] : "http://127.0.0.1:8765")
            + "/segment?shape=" + args[1] + "," + args[2] + "&dtype=uint16";
        using (var client = new HttpClient()) { // off 127.0.0.1 add client.DefaultRequestHeaders.Authorization
            var body = new ByteArrayContent(pixels);
            body.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            HttpResponseMessage reply = client.PostAsync(url, body).Result;
            byte[] mask = reply.Content.ReadAsByteArrayAsync().Result; // H*W uint8 class indices
            if (!reply.IsSuccessStatusCode)
                throw new Exception((int)reply.StatusCode + ": " + System.Text.Encoding.UTF8.GetString(mask));
            string shape = reply.Headers.GetValues("X-Shape").First();
            Console.WriteLine("mask {0}, {1} pixels of class 1", shape, mask.Count(b => b == 1));
        }
    }
}
